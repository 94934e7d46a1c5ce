package main

import (
	"flag"
	"fmt"
	"math/rand"
	"time"
)

// runTrigger: sleeps an interval drawn from N(mean, std) clamped, then sends TRIGGER_BUY
// with the requirements drawn (and clamped) as the original's trigger config has them.
// Intervals are scaled down 60 times, flow sizes 1000 times (docs/auction.md).
func runTrigger(args []string) error {
	fs := flag.NewFlagSet("trigger", flag.ContinueOnError)
	count := fs.Int("count", 5, "BUY events")
	strategy := fs.String("strategy", "auction", "auction or naive")
	seed := fs.Int64("seed", 1, "seeds the intervals and requirements")
	prefix := fs.String("net", "10.0.0.", "node i's address is this prefix followed by i+1")
	intervalMean := fs.Float64("interval-mean", 1, "mean seconds between BUY events (original: 60)")
	intervalStd := fs.Float64("interval-std", 1.0/6, "their std (original: 10)")
	intervalLow := fs.Float64("interval-low", 0.5, "lowest (original: 30)")
	intervalHigh := fs.Float64("interval-high", 2, "highest (original: 120)")
	flowMean := fs.Float64("flow-mean", 0.5, "mean flow size in MB (original: 500)")
	flowStd := fs.Float64("flow-std", 0.25, "its std (original: 250)")
	flowLow := fs.Float64("flow-low", 0.1, "lowest (original: 100)")
	flowHigh := fs.Float64("flow-high", 1.024, "highest (original: 1024)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *strategy != "auction" && *strategy != "naive" {
		return fmt.Errorf("--strategy %q: auction or naive", *strategy)
	}
	if *count < 1 {
		return fmt.Errorf("--count %d: at least 1", *count)
	}
	r := rand.New(rand.NewSource(*seed))
	for tx := 1; tx <= *count; tx++ {
		interval := normal(r, *intervalMean, *intervalStd, *intervalLow, *intervalHigh)
		req := Requirement{
			UpMbps:   normal(r, 25, 12.5, 5, 50),
			DownMbps: normal(r, 25, 12.5, 5, 50),
			Price:    normal(r, 0.5, 0.25, 0.1, 1),
			Mu:       normal(r, 0.8, 0.2, 0.1, 0.99),
			Epsilon:  normal(r, 2, 1, 1, 3),
			FlowMB:   normal(r, *flowMean, *flowStd, *flowLow, *flowHigh),
		}
		time.Sleep(time.Duration(interval * float64(time.Second)))
		if err := send(consumerAddr(*prefix), Message{Type: tTriggerBuy, From: fromTrigger, Tx: tx, Count: *count, Strategy: *strategy, Req: &req}); err != nil {
			return err
		}
		fmt.Printf("trigger: BUY %d of %d sent\n", tx, *count)
	}
	return nil
}
