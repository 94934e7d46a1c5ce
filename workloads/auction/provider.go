package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	beaconInterval  = 10 * time.Second // as in the original
	zProvider       = 3.0              // a provider keeps peers' scores with |z| ≤ 3
	feedbackWeight  = 0.8              // feedback = 0.8·rating + 0.2·old
	feedbackInitial = 1.0
	faultyCapMBps   = 1.0 // the original's tc cap on faulty providers: 1 MB/s
)

type providerOptions struct {
	id, n    int
	prefix   string
	upMbps   float64 // advertised: the topology's consumer -> provider rate
	downMbps float64 // advertised: the topology's provider -> consumer rate
	price    float64
	uptime   float64
	util     float64
	strength float64
	faulty   bool
	noise    float64 // std of the faulty provider's Gaussian noise
	rng      *rand.Rand
}

// txState: one transaction as a provider sees it; messages for it may come before its BUY.
type txState struct {
	req      *Requirement
	strategy string
	prices   map[int]float64
	replies  map[int][]float64
	views    []View
	scored   bool
	informed bool
}

type provider struct {
	o        providerOptions
	beacons  map[int]Beacon
	feedback []float64
	txs      map[int]*txState
}

func runProvider(args []string) error {
	o, err := parseProviderOptions(args)
	if err != nil {
		return err
	}
	inbox := make(chan Message, inboxDepth)
	if err := listen(net.JoinHostPort(providerHost(o.prefix, o.id), strconv.Itoa(providerPortBase+o.id)), inbox); err != nil {
		return err
	}
	if err := serveFlows(providerHost(o.prefix, o.id), o.faulty); err != nil {
		return err
	}
	p := &provider{o: o, beacons: map[int]Beacon{}, feedback: make([]float64, o.n), txs: map[int]*txState{}}
	for j := range p.feedback {
		p.feedback[j] = feedbackInitial
	}
	logJSON(map[string]any{"ev": "provider", "id": o.id, "faulty": o.faulty, "price": o.price, "up_mbps": o.upMbps,
		"down_mbps": o.downMbps, "uptime": o.uptime, "utilisation": o.util, "strength": o.strength})
	beaconTick := time.NewTicker(beaconInterval)
	defer beaconTick.Stop()
	p.beacon()
	for {
		select {
		case <-beaconTick.C:
			p.beacon()
		case m := <-inbox:
			if p.receive(m) {
				return nil
			}
		}
	}
}

func parseProviderOptions(args []string) (providerOptions, error) {
	fs := flag.NewFlagSet("provider", flag.ContinueOnError)
	id := fs.Int("id", -1, "this provider's index k (node k+1); -1: from this host's address")
	n := fs.Int("n", 10, "number of providers")
	prefix := fs.String("net", "10.0.0.", "node i's address is this prefix followed by i+1")
	ups := fs.String("up", "", "comma-separated advertised consumer->provider Mbit/s, one per provider")
	downs := fs.String("down", "", "comma-separated advertised provider->consumer Mbit/s, one per provider")
	honest := fs.Int("honest", -1, "providers 0..honest-1 are honest, the rest faulty (the original: 5, nodes 5-9 faulty); -1: all honest")
	noise := fs.Float64("noise", 0.1, "std of a faulty provider's Gaussian noise")
	seed := fs.Int64("seed", 1, "seeds every provider's parameters (price, uptime, utilisation, strength) and noise")
	if err := fs.Parse(args); err != nil {
		return providerOptions{}, err
	}
	o := providerOptions{id: *id, n: *n, prefix: *prefix, noise: *noise}
	if o.n < 2 {
		return o, fmt.Errorf("--n %d: need at least 2 providers", o.n)
	}
	if o.id < 0 {
		k, err := localAddress(o.prefix, o.n)
		if err != nil {
			return o, err
		}
		o.id = k
	}
	upList, err := floats(*ups, o.n)
	if err != nil {
		return o, fmt.Errorf("--up: %v", err)
	}
	downList, err := floats(*downs, o.n)
	if err != nil {
		return o, fmt.Errorf("--down: %v", err)
	}
	o.upMbps, o.downMbps = upList[o.id], downList[o.id]
	if *honest > o.n {
		return o, fmt.Errorf("--honest %d: more than --n %d", *honest, o.n)
	}
	o.faulty = *honest >= 0 && o.id >= *honest
	// Parameters drawn per provider from (seed, id): the same flags give the same world.
	params := rand.New(rand.NewSource(*seed*1000 + int64(o.id)))
	o.price = 0.1 + 0.3*params.Float64()
	o.uptime = 0.9 + 0.1*params.Float64()
	o.util = 0.1 + 0.4*params.Float64()
	o.strength = 0.6 + 0.4*params.Float64()
	o.rng = rand.New(rand.NewSource(*seed*1000 + 500 + int64(o.id)))
	return o, nil
}

func floats(text string, n int) ([]float64, error) {
	parts := strings.Split(text, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("want %d values, got %d", n, len(parts))
	}
	out := make([]float64, n)
	for i, s := range parts {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || x <= 0 {
			return nil, fmt.Errorf("bad value %q", s)
		}
		out[i] = x
	}
	return out, nil
}

// noisy: a faulty provider's lie, clamped; an honest one's truth.
func (p *provider) noisy(x, low, high float64) float64 {
	if !p.o.faulty {
		return x
	}
	return clamp(x+p.o.noise*p.o.rng.NormFloat64(), low, high)
}

func (p *provider) beacon() {
	b := Beacon{UpMbps: p.o.upMbps, DownMbps: p.o.downMbps, Uptime: p.o.uptime, Utilisation: p.noisy(p.o.util, 0, 1), Strength: p.o.strength}
	p.beacons[p.o.id] = b
	for j := 0; j < p.o.n; j++ {
		if j != p.o.id {
			p.sendTo(providerAddr(p.o.prefix, j), Message{Type: tBeacon, From: p.o.id, Beacon: &b})
		}
	}
}

func (p *provider) sendTo(addr string, m Message) {
	if err := send(addr, m); err != nil {
		fmt.Fprintf(os.Stderr, "provider %d: %v\n", p.o.id, err)
	}
}

func (p *provider) tx(id int) *txState {
	t := p.txs[id]
	if t == nil {
		t = &txState{prices: map[int]float64{}, replies: map[int][]float64{}}
		p.txs[id] = t
	}
	return t
}

// receive handles one message; true when the run is over.
func (p *provider) receive(m Message) bool {
	switch m.Type {
	case tBeacon:
		p.beacons[m.From] = *m.Beacon
	case tBuy:
		t := p.tx(m.Tx)
		t.req, t.strategy = m.Req, m.Strategy
		if m.Strategy == "naive" {
			offer := Offer{Price: p.noisy(p.o.price, 0.01, 2), UpMbps: p.o.upMbps, DownMbps: p.o.downMbps}
			p.sendTo(consumerAddr(p.o.prefix), Message{Type: tOffer, From: p.o.id, Tx: m.Tx, Offer: &offer})
			return false
		}
		price := p.noisy(p.o.price, 0.01, 2)
		t.prices[p.o.id] = price
		for j := 0; j < p.o.n; j++ {
			if j != p.o.id {
				p.sendTo(providerAddr(p.o.prefix, j), Message{Type: tRequestVote, From: p.o.id, Tx: m.Tx, Price: price})
			}
		}
		p.progress(m.Tx)
	case tRequestVote:
		p.tx(m.Tx).prices[m.From] = m.Price
		p.progress(m.Tx)
	case tReplyVote:
		p.tx(m.Tx).replies[m.From] = m.Scores
		p.progress(m.Tx)
	case tStartFlow:
		// The winner serves the consumer's flows on its data port; nothing to do here.
	case tTransactionEnd:
		if m.Winner >= 0 { // no winner: nobody's feedback changes
			assert(m.Winner < p.o.n, "the winner is a provider")
			old := p.feedback[m.Winner]
			p.feedback[m.Winner] = feedbackWeight*m.Rating + (1-feedbackWeight)*old
		}
		delete(p.txs, m.Tx)
		return m.Last
	}
	return false
}

// progress: scores once the BUY and every provider's price are in, informs the consumer
// once every peer's scores are in.
func (p *provider) progress(tx int) {
	t := p.tx(tx)
	if t.req == nil || t.strategy != "auction" {
		return
	}
	if !t.scored && len(t.prices) == p.o.n {
		t.scored = true
		t.views = p.scoreAll(*t.req, t.prices)
		scores := make([]float64, p.o.n)
		for j, v := range t.views {
			scores[j] = v.Score
		}
		t.replies[p.o.id] = scores
		for j := 0; j < p.o.n; j++ {
			if j != p.o.id {
				p.sendTo(providerAddr(p.o.prefix, j), Message{Type: tReplyVote, From: p.o.id, Tx: tx, Scores: scores})
			}
		}
	}
	if t.scored && !t.informed && len(t.replies) == p.o.n {
		t.informed = true
		means := make([]float64, p.o.n)
		for target := 0; target < p.o.n; target++ {
			column := make([]float64, 0, p.o.n)
			for _, scores := range t.replies {
				column = append(column, scores[target])
			}
			means[target] = p.noisy(zFilteredMean(column, zProvider), -1, 1)
		}
		p.sendTo(consumerAddr(p.o.prefix), Message{Type: tInformVote, From: p.o.id, Tx: tx, Scores: means, Views: t.views})
	}
}

// scoreAll: this provider's view of every provider (itself included) and its score.
func (p *provider) scoreAll(req Requirement, prices map[int]float64) []View {
	views := make([]View, p.o.n)
	for j := 0; j < p.o.n; j++ {
		b, ok := p.beacons[j]
		v := View{Price: prices[j], UpMbps: b.UpMbps, DownMbps: b.DownMbps, Uptime: b.Uptime, Load: 1 - b.Utilisation,
			Strength: b.Strength, Feedback: p.feedback[j], Missing: !ok}
		if !ok {
			views[j] = v // no beacon yet: score 0
			continue
		}
		v.PF = priceFactor(req, v.Price)
		v.SF = speedFactor(req, v.UpMbps, v.DownMbps)
		// A faulty scorer perturbs every factor (the logged view is what it used).
		v.PF = p.noisy(v.PF, -2, 1)
		v.SF = p.noisy(v.SF, 0, 1)
		v.Uptime = p.noisy(v.Uptime, 0, 1)
		v.Load = p.noisy(v.Load, 0, 1)
		v.Strength = p.noisy(v.Strength, 0, 1)
		v.Feedback = p.noisy(v.Feedback, 0, 1)
		v.Score = score(v)
		views[j] = v
	}
	return views
}
