package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"
)

const (
	zConsumer = 1.0 // the consumer keeps reports with |z| ≤ 1
	// reportTimeout: ours, not the original's (which waits forever, so one silent provider
	// stalls everything): the consumer decides with the reports it has by then.
	reportTimeout = 10 * time.Second
)

type consumerOptions struct {
	n      int
	prefix string
	out    string
}

// Transaction: one entry of the transactions JSON (the original's fields first; speeds
// in MB/s as the original recorded them).
type Transaction struct {
	Winner          string      `json:"winner"`
	Price           float64     `json:"price"`
	PriceConsumer   float64     `json:"price_consumer"`
	AverageUplink   float64     `json:"average_uplink"`
	AverageDownlink float64     `json:"average_downlink"`
	WinnerIndex     int         `json:"winner_index"`
	Rating          float64     `json:"rating"`
	Strategy        string      `json:"strategy"`
	Req             Requirement `json:"req"`
	Reports         int         `json:"reports"`
	DecisionMs      float64     `json:"decision_ms"`
	FlowMs          float64     `json:"flow_ms"`
}

type consumer struct {
	o       consumerOptions
	inbox   chan Message
	pending []Message
	records map[string]Transaction
}

func runConsumer(args []string) error {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	n := fs.Int("n", 10, "number of providers")
	prefix := fs.String("net", "10.0.0.", "node i's address is this prefix followed by i+1")
	out := fs.String("out", "/tmp/consumer_transactions.json", "where the transactions JSON goes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &consumer{o: consumerOptions{n: *n, prefix: *prefix, out: *out}, inbox: make(chan Message, inboxDepth), records: map[string]Transaction{}}
	if err := listen(net.JoinHostPort("0.0.0.0", strconv.Itoa(consumerPort)), c.inbox); err != nil {
		return err
	}
	for done, count := 0, -1; count < 0 || done < count; done++ {
		trigger := c.nextTrigger()
		count = trigger.Count
		assert(count > 0, "a trigger says how many transactions come")
		c.transact(trigger, done+1 == count)
	}
	body, err := json.MarshalIndent(c.records, "", "  ")
	assert(err == nil, "the transactions marshal")
	if err := os.WriteFile(c.o.out, append(body, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("auction: %d transactions written to %s\n", len(c.records), c.o.out)
	return nil
}

func (c *consumer) nextTrigger() Message {
	for len(c.pending) == 0 {
		m := <-c.inbox
		if m.Type == tTriggerBuy {
			c.pending = append(c.pending, m)
		}
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return m
}

// transact runs one transaction to its end: BUY, the decision, flows, TRANSACTION_END.
func (c *consumer) transact(trigger Message, last bool) {
	req := *trigger.Req
	tx := trigger.Tx
	start := time.Now()
	logJSON(map[string]any{"ev": "buy", "tx": tx, "strategy": trigger.Strategy, "req": req})
	for k := 0; k < c.o.n; k++ {
		c.sendTo(providerAddr(c.o.prefix, k), Message{Type: tBuy, From: fromConsumer, Tx: tx, Strategy: trigger.Strategy, Req: &req})
	}
	reports := c.collect(tx, trigger.Strategy)
	var winner int
	var price float64
	if trigger.Strategy == "naive" {
		winner, price = decideNaive(tx, c.o.n, req, reports)
	} else {
		winner, price = decideAuction(tx, c.o.n, reports)
	}
	decided := time.Now()
	record := Transaction{Winner: "", WinnerIndex: winner, Price: price, PriceConsumer: req.Price, Strategy: trigger.Strategy,
		Req: req, Reports: len(reports), DecisionMs: ms(decided.Sub(start))}
	rating, upMbps, downMbps := 0.0, 0.0, 0.0
	if winner >= 0 {
		record.Winner = "p" + strconv.Itoa(winner)
		for k := 0; k < c.o.n; k++ {
			c.sendTo(providerAddr(c.o.prefix, k), Message{Type: tStartFlow, From: fromConsumer, Tx: tx, Winner: winner})
		}
		rating, upMbps, downMbps = c.flows(providerHost(c.o.prefix, winner), req)
	}
	record.Rating, record.AverageUplink, record.AverageDownlink = rating, upMbps/8, downMbps/8
	record.FlowMs = ms(time.Since(decided))
	c.records[strconv.Itoa(tx)] = record
	logJSON(map[string]any{"ev": "transaction", "tx": tx, "record": record})
	for k := 0; k < c.o.n; k++ {
		c.sendTo(providerAddr(c.o.prefix, k), Message{Type: tTransactionEnd, From: fromConsumer, Tx: tx, Winner: winner,
			Rating: rating, UpMbps: upMbps, DownMbps: downMbps, Last: last})
	}
}

// collect gathers this transaction's reports (INFORM_VOTE or OFFER) from every provider,
// or what came before reportTimeout; triggers arriving meanwhile wait their turn.
func (c *consumer) collect(tx int, strategy string) map[int]Message {
	want := tInformVote
	if strategy == "naive" {
		want = tOffer
	}
	reports := map[int]Message{}
	timeout := time.After(reportTimeout)
	for len(reports) < c.o.n {
		select {
		case m := <-c.inbox:
			switch {
			case m.Type == tTriggerBuy:
				c.pending = append(c.pending, m)
			case m.Type == want && m.Tx == tx:
				reports[m.From] = m
				if want == tOffer {
					logJSON(map[string]any{"ev": "offer", "tx": tx, "from": m.From, "offer": m.Offer})
				} else {
					// One line per view: the guest agent splits console lines at 1024 bytes.
					logJSON(map[string]any{"ev": "inform_vote", "tx": tx, "from": m.From, "scores": m.Scores})
					for target, v := range m.Views {
						logJSON(map[string]any{"ev": "view", "tx": tx, "from": m.From, "target": target, "view": v})
					}
				}
			}
		case <-timeout:
			logJSON(map[string]any{"ev": "timeout", "tx": tx, "reports": len(reports)})
			return reports
		}
	}
	return reports
}

// decideAuction: per target the mean of the reported scores with |z| ≤ 1; the highest
// wins (the lowest index on a tie). The price paid is the winner's announced price as its
// own report's view has it (else the first report's view).
func decideAuction(tx, n int, reports map[int]Message) (int, float64) {
	if len(reports) == 0 {
		return -1, 0
	}
	means := make([]float64, n)
	winner := -1
	for target := 0; target < n; target++ {
		column := []float64{}
		for from := 0; from < n; from++ {
			if r, ok := reports[from]; ok && len(r.Scores) == n {
				column = append(column, r.Scores[target])
			}
		}
		means[target] = zFilteredMean(column, zConsumer)
		if !math.IsNaN(means[target]) && (winner < 0 || means[target] > means[winner]) {
			winner = target
		}
	}
	logJSON(map[string]any{"ev": "decision", "tx": tx, "strategy": "auction", "means": nanNull(means), "winner": winner})
	if winner < 0 {
		return -1, 0
	}
	source, ok := reports[winner]
	for from := 0; !ok && from < n; from++ {
		source, ok = reports[from]
	}
	assert(ok && len(source.Views) == n, "a report has a view of every provider")
	return winner, source.Views[winner].Price
}

// decideNaive (our reconstruction): the offer with the highest PF·SF wins (the lowest
// index on a tie), no voting, no feedback.
func decideNaive(tx, n int, req Requirement, offers map[int]Message) (int, float64) {
	winner, best := -1, math.Inf(-1)
	values := make([]float64, n)
	for from := 0; from < n; from++ {
		values[from] = math.NaN()
		m, ok := offers[from]
		if !ok {
			continue
		}
		values[from] = priceFactor(req, m.Offer.Price) * speedFactor(req, m.Offer.UpMbps, m.Offer.DownMbps)
		if values[from] > best {
			winner, best = from, values[from]
		}
	}
	logJSON(map[string]any{"ev": "decision", "tx": tx, "strategy": "naive", "values": nanNull(values), "winner": winner})
	if winner < 0 {
		return -1, 0
	}
	return winner, offers[winner].Offer.Price
}

// nanNull: JSON has no NaN; a missing value logs as null.
func nanNull(xs []float64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		if !math.IsNaN(x) {
			out[i] = x
		}
	}
	return out
}

// flows: a download then an upload of the flow size from the winner; the rating is the
// mean over the two directions of min(1, measured / required).
func (c *consumer) flows(host string, req Requirement) (rating, upMbps, downMbps float64) {
	size := int64(req.FlowMB * 1e6)
	downMbps, err := runFlow(host, 'd', size)
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
	}
	upMbps, err = runFlow(host, 'u', size)
	if err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
	}
	rating = (math.Min(1, upMbps/req.UpMbps) + math.Min(1, downMbps/req.DownMbps)) / 2
	return rating, upMbps, downMbps
}

func (c *consumer) sendTo(addr string, m Message) {
	if err := send(addr, m); err != nil {
		fmt.Fprintf(os.Stderr, "consumer: %v\n", err)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
