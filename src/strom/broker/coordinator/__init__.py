"""Coordinators of the broker: classic consumer groups and their committed offsets (`group`, `offsets`)."""
