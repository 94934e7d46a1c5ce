package main

// Bracha's reliable broadcast with the reference experiment's rules (not the textbook's):
// f = N/3, Ready at Echo >= (N+f)/2, Echo and Ready at Ready >= f+1, delivery at
// Ready >= 2f+1. A node counts its own votes, never sends to itself, and does not echo its
// own Initial. Thresholds are checked only when a message of that kind arrives, as there.
// Value v = k*N + id names the k-th (1-based) value of node id.

import "fmt"

type kind uint8

const (
	kindInitial kind = iota
	kindEcho
	kindReady
)

var kindNames = [...]string{"Initial", "Echo", "Ready"}

type valueState uint8

const (
	stateNone valueState = iota
	stateSentEcho
	stateSentReady
)

type instance struct {
	state     valueState
	echoes    int
	readies   int
	delivered bool
}

// protocol holds one node's state; send and deliver are its only effects.
type protocol struct {
	id, n, m, f   int
	echoThreshold int
	goal          int // deliveries after which the node is done
	next          int // the k of the next own value to broadcast (1-based)
	delivered     int
	values        map[int]*instance
	send          func(k kind, v int)
	deliver       func(v int)
}

func newProtocol(id, n, m, silent int, send func(kind, int), deliver func(int)) *protocol {
	f := n / 3
	p := &protocol{id: id, n: n, m: m, f: f, echoThreshold: (n + f) / 2, goal: m * (n - silent),
		next: 1, values: make(map[int]*instance), send: send, deliver: deliver}
	assert(p.f >= 0 && p.echoThreshold >= 1, "thresholds")
	return p
}

func (p *protocol) done() bool { return p.delivered == p.goal }

func (p *protocol) value(v int) *instance {
	x, ok := p.values[v]
	if !ok {
		x = &instance{}
		p.values[v] = x
	}
	return x
}

// broadcastNext sends the node's next own value, if any is left.
func (p *protocol) broadcastNext() {
	if p.next > p.m {
		return
	}
	v := p.next*p.n + p.id
	p.next++
	p.send(kindInitial, v)
}

func (p *protocol) sendEcho(v int, x *instance) {
	x.state = stateSentEcho
	x.echoes++
	p.send(kindEcho, v)
}

func (p *protocol) sendReady(v int, x *instance) {
	x.state = stateSentReady
	x.readies++
	p.send(kindReady, v)
}

func (p *protocol) receive(k kind, v int) {
	if v < p.n || v >= (p.m+1)*p.n {
		return // not a value of this run: the reference would count it; we drop it
	}
	x := p.value(v)
	switch k {
	case kindInitial:
		if x.state == stateNone {
			p.sendEcho(v, x)
		}
	case kindEcho:
		x.echoes++
		if x.echoes >= p.echoThreshold && x.state == stateNone {
			p.sendEcho(v, x)
		}
		if x.echoes >= p.echoThreshold && x.state == stateSentEcho {
			p.sendReady(v, x)
		}
	case kindReady:
		x.readies++
		if x.readies >= p.f+1 && x.state == stateNone {
			p.sendEcho(v, x)
		}
		if x.readies >= p.f+1 && x.state == stateSentEcho {
			p.sendReady(v, x)
		}
		if x.readies >= 2*p.f+1 && x.state == stateSentReady && !x.delivered {
			p.onDeliver(v, x)
		}
	}
}

func (p *protocol) onDeliver(v int, x *instance) {
	x.delivered = true
	p.delivered++
	assert(p.delivered <= p.goal, "more deliveries than values")
	p.deliver(v)
	// The next own value goes out once the current one is delivered here.
	if v == (p.next-1)*p.n+p.id {
		p.broadcastNext()
	}
}

func assert(ok bool, what string) {
	if !ok {
		panic(fmt.Sprintf("assertion failed: %s", what))
	}
}
