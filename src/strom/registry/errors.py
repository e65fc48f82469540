"""The registry's failures, each with the HTTP status and the `error_code` Confluent Schema Registry answers.

Clients (confluent-kafka's `SchemaRegistryClient`, Java's `RestService`) branch on `error_code`, so the codes
are Confluent's (`Errors.java`), not ours. Every handler raises a `RegistryError`; the web app turns it into
`{"error_code": N, "message": "..."}` with the status below.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every registry failure: `status` is the HTTP status, `error_code` Confluent's code."""

    status = 500
    error_code = 50001


class SubjectNotFound(RegistryError):
    status, error_code = 404, 40401


class VersionNotFound(RegistryError):
    status, error_code = 404, 40402


class SchemaNotFound(RegistryError):
    status, error_code = 404, 40403


class SubjectSoftDeleted(RegistryError):
    status, error_code = 404, 40404


class SubjectNotSoftDeleted(RegistryError):
    status, error_code = 404, 40405


class VersionSoftDeleted(RegistryError):
    status, error_code = 404, 40406


class VersionNotSoftDeleted(RegistryError):
    status, error_code = 404, 40407


class SubjectConfigNotFound(RegistryError):
    status, error_code = 404, 40408


class SubjectModeNotFound(RegistryError):
    status, error_code = 404, 40409


class IncompatibleSchema(RegistryError):
    # Confluent answered 409 with error_code 409 for years; clients test the HTTP status, not the code.
    status, error_code = 409, 409


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203


class InvalidMode(RegistryError):
    status, error_code = 422, 42204


class OperationNotPermitted(RegistryError):
    status, error_code = 422, 42205


class ReferenceExists(RegistryError):
    status, error_code = 422, 42206


class SchemaTooLarge(RegistryError):
    status, error_code = 422, 42209


class MalformedRequest(RegistryError):
    """The body is not JSON or lacks a required field (Confluent's rest-utils answer 400/400 or 422/422)."""

    status, error_code = 400, 400


class StoreError(RegistryError):
    """The `_schemas` topic could not be read or written."""

    status, error_code = 500, 50001


class StoreTimeout(RegistryError):
    status, error_code = 500, 50002
