// Command strom-franzgo drives franz-go (github.com/twmb/franz-go) through one compatibility scenario step and
// prints what happened as JSON lines, so the Python tests can check it against the same expectations as every
// other client.
//
//	strom-franzgo produce -brokers H:P -topic T -start 0 -count 10000 -compression snappy
//	    one line per acknowledged record: {"key":"key-00000","partition":3,"offset":17}
//	strom-franzgo consume -brokers H:P -topic T -group G -members 2 -count 5000
//	    one line per record processed: {"member":1,"partition":3,"offset":17,"key":"key-00000","value":"..."}
//	    and one per assignment: {"member":1,"assigned":[0,1,2]}
//
// The consumers commit exactly the records they processed, synchronously, before they allow the next rebalance
// (BlockRebalanceOnPoll), so a correct broker yields no record twice across members, restarts and rebalances.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *output) emit(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(v); err != nil {
		fail("writing output: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "strom-franzgo: "+format+"\n", args...)
	os.Exit(1)
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "none":
		return kgo.NoCompression()
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	fail("unknown compression %q (none, gzip, snappy, lz4, zstd)", name)
	return kgo.NoCompression()
}

func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	start := fs.Int("start", 0, "first record number")
	count := fs.Int("count", 10000, "records to produce")
	compression := fs.String("compression", "snappy", "batch compression")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after")
	_ = fs.Parse(args)

	// franz-go's default producer is idempotent with acks=all; the default partitioner hashes keys with murmur2.
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.DefaultProduceTopic(*topic),
		kgo.ProducerBatchCompression(codec(*compression)),
	)
	if err != nil {
		fail("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	out := &output{enc: json.NewEncoder(os.Stdout)}
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for i := *start; i < *start+*count; i++ {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%05d", i)), Value: []byte(fmt.Sprintf("franzgo-%d", i))}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			out.emit(map[string]any{"key": string(r.Key), "partition": r.Partition, "offset": r.Offset})
		})
	}
	wg.Wait()
	if firstErr != nil {
		fail("produce: %v", firstErr)
	}
}

func consume(args []string) {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "consumer group")
	members := fs.Int("members", 2, "group members, each its own client")
	count := fs.Int("count", 10000, "records to process in total, then commit and leave")
	timeout := fs.Duration("timeout", 90*time.Second, "give up after")
	_ = fs.Parse(args)

	out := &output{enc: json.NewEncoder(os.Stdout)}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var mu sync.Mutex
	processed := 0
	var wg sync.WaitGroup
	errs := make(chan error, *members)

	// Nobody polls before every member has been assigned partitions once: the group's first rebalances are
	// over by then, and records are not all taken by the first member before the second one joins.
	var groupMu sync.Mutex
	everAssigned := map[int]bool{}
	groupComplete := make(chan struct{})

	for m := 0; m < *members; m++ {
		member := m
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(strings.Split(*brokers, ",")...),
			kgo.ConsumerGroup(*group),
			kgo.ConsumeTopics(*topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
				parts := assigned[*topic]
				sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
				out.emit(map[string]any{"member": member, "assigned": parts})
				if len(parts) > 0 {
					groupMu.Lock()
					if !everAssigned[member] {
						everAssigned[member] = true
						if len(everAssigned) == *members {
							close(groupComplete)
						}
					}
					groupMu.Unlock()
				}
			}),
		)
		if err != nil {
			fail("client: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A poll that returned because ctx ended never got its AllowRebalance; plain Close would wait for it.
			defer cl.CloseAllowingRebalance()
			select {
			case <-groupComplete:
			case <-ctx.Done():
				return
			}
			for {
				fetches := cl.PollRecords(ctx, 500)
				if ctx.Err() != nil {
					return
				}
				var fetchErr error
				fetches.EachError(func(t string, p int32, err error) {
					fetchErr = fmt.Errorf("member %d fetching %s[%d]: %w", member, t, p, err)
				})
				if fetchErr != nil {
					errs <- fetchErr
					cancel()
					return
				}
				var mine []*kgo.Record
				mu.Lock()
				fetches.EachRecord(func(r *kgo.Record) {
					if processed < *count {
						processed++
						mine = append(mine, r)
						out.emit(map[string]any{
							"member": member, "partition": r.Partition, "offset": r.Offset,
							"key": string(r.Key), "value": string(r.Value),
						})
					}
				})
				done := processed >= *count
				mu.Unlock()
				if len(mine) > 0 {
					// Not ctx: another member finishing cancels ctx, and this member must still commit.
					commitCtx, commitCancel := context.WithTimeout(context.Background(), 30*time.Second)
					err := cl.CommitRecords(commitCtx, mine...)
					commitCancel()
					if err != nil {
						errs <- fmt.Errorf("member %d committing: %w", member, err)
						cancel()
						return
					}
				}
				cl.AllowRebalance()
				if done {
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail("%v", err)
	}
	if processed < *count {
		fail("processed %d of %d records before the %s timeout", processed, *count, *timeout)
	}
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: strom-franzgo produce|consume [flags]")
	}
	switch os.Args[1] {
	case "produce":
		produce(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	default:
		fail("unknown command %q (produce, consume)", os.Args[1])
	}
}
