// bracha: one node of Bracha's reliable broadcast, behaving on the wire as the reference
// experiment's program did (../../../shared/WORKLOADS.md; docs/bracha.md): a TCP full
// mesh on port 42512 where node i dials every j > i in turn (retrying every 500 ms) and
// accepts the others, JSON messages written back to back, Nagle's algorithm left on (no
// TCP_NODELAY), no keepalive. Prints "Delivered msg V" per delivery and, once it delivered
// every correct node's M values, "Execution time: X seconds" measured from --t0 (the
// reference's launch script read the clock just before starting its program).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	portDefault   = 42512
	dialRetry     = 500 * time.Millisecond
	eventsPending = 4096
)

type options struct {
	id     int
	n      int
	m      int
	peers  []string // host:port per node, index = node id
	silent map[int]bool
	t0     time.Time
}

type event struct {
	from int
	kind kind
	v    int
	eof  bool
}

func main() {
	start := time.Now()
	opts, err := parseOptions(os.Args[1:], start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bracha: %v\n", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "bracha: %v\n", err)
		os.Exit(1)
	}
}

func parseOptions(args []string, start time.Time) (options, error) {
	fs := flag.NewFlagSet("bracha", flag.ContinueOnError)
	id := fs.Int("id", -1, "this node's id; -1: the peer address that is one of this host's")
	n := fs.Int("n", 0, "number of nodes")
	m := fs.Int("m", 1, "values each correct node broadcasts, one after another")
	port := fs.Int("port", portDefault, "TCP port every node listens on")
	prefix := fs.String("net", "10.0.0.", "node i's address is this prefix followed by i+1")
	silent := fs.String("silent", "", "comma-separated ids of silent nodes: they join the mesh and never send")
	t0 := fs.String("t0", "", "start of the timed run as seconds.nanoseconds of CLOCK_REALTIME (default: program start)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	o := options{id: *id, n: *n, m: *m, silent: map[int]bool{}, t0: start}
	if o.n < 1 || o.m < 1 {
		return o, fmt.Errorf("--n and --m must be >= 1 (got %d, %d)", o.n, o.m)
	}
	for i := 0; i < o.n; i++ {
		o.peers = append(o.peers, net.JoinHostPort(*prefix+strconv.Itoa(i+1), strconv.Itoa(*port)))
	}
	for _, s := range strings.Split(*silent, ",") {
		if s == "" {
			continue
		}
		k, err := strconv.Atoi(s)
		if err != nil || k < 0 || k >= o.n {
			return o, fmt.Errorf("--silent: no node %q among %d", s, o.n)
		}
		o.silent[k] = true
	}
	f := o.n / 3
	if o.n-len(o.silent) < 2*f+1 {
		return o, fmt.Errorf("%d silent of %d nodes: the %d correct ones cannot reach 2f+1 = %d Ready votes", len(o.silent), o.n, o.n-len(o.silent), 2*f+1)
	}
	if *t0 != "" {
		t, err := parseClock(*t0)
		if err != nil {
			return o, fmt.Errorf("--t0: %v", err)
		}
		o.t0 = t
	}
	if o.id < 0 {
		found, err := localId(o.peers)
		if err != nil {
			return o, err
		}
		o.id = found
	}
	if o.id >= o.n {
		return o, fmt.Errorf("--id %d: no such node among %d", o.id, o.n)
	}
	return o, nil
}

// parseClock reads "seconds.nanoseconds" (what `vclock -r` or `date +%s.%N` print).
func parseClock(text string) (time.Time, error) {
	sec, frac, _ := strings.Cut(text, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(s, ns), nil
}

// localId is the index of the peer whose address belongs to this host.
func localId(peers []string) (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return -1, err
	}
	for i, p := range peers {
		host, _, _ := net.SplitHostPort(p)
		for _, a := range addrs {
			if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.String() == host {
				return i, nil
			}
		}
	}
	return -1, errors.New("no peer address is this host's: give --id")
}

func run(o options) error {
	conns, err := connectMesh(o)
	if err != nil {
		return err
	}
	events := make(chan event, eventsPending)
	for j, c := range conns {
		if c != nil {
			go readPeer(j, c, events)
		}
	}
	p := newProtocol(o.id, o.n, o.m, len(o.silent),
		func(k kind, v int) { broadcast(conns, k, v) },
		func(v int) { fmt.Printf("Delivered msg %d\n", v) })
	if o.silent[o.id] {
		fmt.Println("Silent: joined the mesh, sends nothing")
		closeWrites(conns)
	} else {
		p.broadcastNext()
	}
	open := o.n - 1
	finished := false
	for open > 0 {
		ev := <-events
		if ev.eof {
			open--
			continue
		}
		if finished || o.silent[o.id] {
			continue // votes that arrive after we are done change nothing here
		}
		p.receive(ev.kind, ev.v)
		if p.done() {
			finished = true
			elapsed := time.Since(o.t0)
			fmt.Println("Delivered all msgs")
			fmt.Printf("Execution time: %d.%09d seconds\n", elapsed/time.Second, elapsed%time.Second)
			// FIN after what is queued, then read on until every peer is done: exiting at
			// once would reset connections whose peers still need our queued votes.
			closeWrites(conns)
		}
	}
	return nil
}

// connectMesh dials every higher node in turn, then accepts the lower ones (a peer is
// known by its address), as the reference did. Nagle stays on and keepalive off.
func connectMesh(o options) ([]*net.TCPConn, error) {
	// Our own address rather than 0.0.0.0 (the same on the wire in a guest): nodes can
	// then share one host on loopback addresses, for a test outside a VM.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp4", o.peers[o.id])
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	conns := make([]*net.TCPConn, o.n)
	self, err := net.ResolveTCPAddr("tcp4", o.peers[o.id])
	if err != nil {
		return nil, err
	}
	dialer := net.Dialer{KeepAlive: -1, LocalAddr: &net.TCPAddr{IP: self.IP}}
	for j := o.id + 1; j < o.n; j++ {
		for {
			c, err := dialer.Dial("tcp4", o.peers[j])
			if err == nil {
				conns[j] = setup(c)
				break
			}
			fmt.Printf("cannot connect to %d, retrying: %v\n", j, err)
			time.Sleep(dialRetry)
		}
	}
	for missing := o.id; missing > 0; {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		j := peerIndex(o.peers, c.RemoteAddr())
		if j < 0 || j >= o.id || conns[j] != nil {
			c.Close()
			continue
		}
		conns[j] = setup(c)
		missing--
	}
	fmt.Printf("Connected to %d peers at %.6f s\n", o.n-1, time.Since(o.t0).Seconds())
	return conns, nil
}

func setup(c net.Conn) *net.TCPConn {
	t := c.(*net.TCPConn)
	assert(t.SetNoDelay(false) == nil, "Nagle on")
	return t
}

func peerIndex(peers []string, addr net.Addr) int {
	ip := addr.(*net.TCPAddr).IP.String()
	for i, p := range peers {
		if host, _, _ := net.SplitHostPort(p); host == ip {
			return i
		}
	}
	return -1
}

// wireMessage is the reference's serde encoding: {"Echo":{"v":12}}.
type wireMessage struct {
	Initial *struct {
		V int `json:"v"`
	} `json:",omitempty"`
	Echo *struct {
		V int `json:"v"`
	} `json:",omitempty"`
	Ready *struct {
		V int `json:"v"`
	} `json:",omitempty"`
}

func readPeer(j int, c *net.TCPConn, events chan<- event) {
	dec := json.NewDecoder(c)
	for {
		var w wireMessage
		if err := dec.Decode(&w); err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "bracha: from %d: %v\n", j, err)
			}
			events <- event{from: j, eof: true}
			return
		}
		switch {
		case w.Initial != nil:
			events <- event{from: j, kind: kindInitial, v: w.Initial.V}
		case w.Echo != nil:
			events <- event{from: j, kind: kindEcho, v: w.Echo.V}
		case w.Ready != nil:
			events <- event{from: j, kind: kindReady, v: w.Ready.V}
		}
	}
}

// broadcast writes one message to every peer, one write each; a peer gone is skipped.
func broadcast(conns []*net.TCPConn, k kind, v int) {
	b := []byte(fmt.Sprintf(`{"%s":{"v":%d}}`, kindNames[k], v))
	for _, c := range conns {
		if c != nil {
			_, _ = c.Write(b)
		}
	}
}

func closeWrites(conns []*net.TCPConn) {
	for _, c := range conns {
		if c != nil {
			_ = c.CloseWrite()
		}
	}
}
