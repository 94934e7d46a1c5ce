// auction: the roles of the auction-based network selection experiment (seed 001,
// ../../../shared/WORKLOADS.md; docs/auction.md): `auction consumer`, `auction provider`,
// `auction trigger`. Every message opens a new TCP connection carrying one JSON object, as
// in the original. Node i of the topology has the address 10.0.0.(i+1): the consumer is
// node 0, provider k is node k+1; the trigger runs on the consumer's VM.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"time"
)

const (
	consumerPort     = 9000
	providerPortBase = 8080 // provider k listens on 8080+k, as in the original
	dataPort         = 5201 // flows (our generator), on every provider
	dialTries        = 40
	dialRetry        = 250 * time.Millisecond
	messageBytesMax  = 1 << 20
	inboxDepth       = 4096
)

// Message types: the original's eight, plus OFFER for the naive strategy (our reconstruction).
const (
	tBeacon         = "BEACON"
	tBuy            = "BUY"
	tRequestVote    = "REQUEST_VOTE"
	tReplyVote      = "REPLY_VOTE"
	tInformVote     = "INFORM_VOTE"
	tStartFlow      = "START_FLOW"
	tTransactionEnd = "TRANSACTION_END"
	tTriggerBuy     = "TRIGGER_BUY"
	tOffer          = "OFFER"
)

const (
	fromConsumer = -1
	fromTrigger  = -2
)

// Requirement: what one BUY asks for, drawn by the trigger. Speeds in Mbit/s in the
// consumer's terms: up = consumer -> provider, down = provider -> consumer.
type Requirement struct {
	UpMbps   float64 `json:"up_mbps"`
	DownMbps float64 `json:"down_mbps"`
	Price    float64 `json:"price"`
	Mu       float64 `json:"mu"`
	Epsilon  float64 `json:"epsilon"`
	FlowMB   float64 `json:"flow_mb"`
}

// Beacon: what a provider tells its peers every beacon interval.
type Beacon struct {
	UpMbps      float64 `json:"up_mbps"`
	DownMbps    float64 `json:"down_mbps"`
	Uptime      float64 `json:"uptime"`
	Utilisation float64 `json:"utilisation"`
	Strength    float64 `json:"strength"`
}

// View: the inputs one scorer used for one target, its factors and the score FF.
type View struct {
	Price    float64 `json:"price"`
	UpMbps   float64 `json:"up_mbps"`
	DownMbps float64 `json:"down_mbps"`
	Uptime   float64 `json:"uptime"`
	Load     float64 `json:"load"`
	Strength float64 `json:"strength"`
	Feedback float64 `json:"feedback"`
	PF       float64 `json:"pf"`
	SF       float64 `json:"sf"`
	Score    float64 `json:"score"`
	Missing  bool    `json:"missing,omitempty"`
}

// Offer: a provider's answer to a naive BUY.
type Offer struct {
	Price    float64 `json:"price"`
	UpMbps   float64 `json:"up_mbps"`
	DownMbps float64 `json:"down_mbps"`
}

type Message struct {
	Type     string       `json:"type"`
	From     int          `json:"from"`
	Tx       int          `json:"tx"`
	Count    int          `json:"count,omitempty"`
	Strategy string       `json:"strategy,omitempty"`
	Req      *Requirement `json:"req,omitempty"`
	Beacon   *Beacon      `json:"beacon,omitempty"`
	Price    float64      `json:"price,omitempty"`
	Scores   []float64    `json:"scores,omitempty"`
	Views    []View       `json:"views,omitempty"`
	Offer    *Offer       `json:"offer,omitempty"`
	Winner   int          `json:"winner"`
	Rating   float64      `json:"rating,omitempty"`
	UpMbps   float64      `json:"up_mbps,omitempty"`
	DownMbps float64      `json:"down_mbps,omitempty"`
	Last     bool         `json:"last,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: auction consumer|provider|trigger [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "consumer":
		err = runConsumer(os.Args[2:])
	case "provider":
		err = runProvider(os.Args[2:])
	case "trigger":
		err = runTrigger(os.Args[2:])
	default:
		err = fmt.Errorf("unknown role %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "auction %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func consumerAddr(prefix string) string {
	return net.JoinHostPort(prefix+"1", strconv.Itoa(consumerPort))
}

func providerHost(prefix string, k int) string { return prefix + strconv.Itoa(k+2) }

func providerAddr(prefix string, k int) string {
	return net.JoinHostPort(providerHost(prefix, k), strconv.Itoa(providerPortBase+k))
}

// send opens a connection, writes one JSON object and closes it. It retries the dial only:
// at start a peer may not listen yet.
func send(addr string, m Message) error {
	body, err := json.Marshal(m)
	assert(err == nil, "a message marshals")
	var c net.Conn
	for try := 0; ; try++ {
		c, err = net.Dial("tcp", addr)
		if err == nil {
			break
		}
		if try+1 == dialTries {
			return fmt.Errorf("%s to %s: %v", m.Type, addr, err)
		}
		time.Sleep(dialRetry)
	}
	defer c.Close()
	_, err = c.Write(body)
	return err
}

// listen accepts connections and hands each one's message to the inbox.
func listen(addr string, inbox chan<- Message) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				body, err := io.ReadAll(io.LimitReader(c, messageBytesMax))
				if err != nil {
					return
				}
				var m Message
				if err := json.Unmarshal(body, &m); err != nil {
					fmt.Fprintf(os.Stderr, "bad message: %v\n", err)
					return
				}
				inbox <- m
			}()
		}
	}()
	return nil
}

// logJSON prints one JSON line on stdout (the console): the record a test or report reads.
func logJSON(v any) {
	line, err := json.Marshal(v)
	assert(err == nil, "a log line marshals")
	fmt.Println(string(line))
}

func localAddress(prefix string, candidates int) (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return -1, err
	}
	for k := 0; k < candidates; k++ {
		for _, a := range addrs {
			if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.String() == providerHost(prefix, k) {
				return k, nil
			}
		}
	}
	return -1, errors.New("no provider address is this host's: give --id")
}

// normal draws from N(mean, std) clamped to [low, high], as the original's configs do.
func normal(r *rand.Rand, mean, std, low, high float64) float64 {
	return clamp(mean+std*r.NormFloat64(), low, high)
}

func clamp(x, low, high float64) float64 {
	if x < low {
		return low
	}
	if x > high {
		return high
	}
	return x
}

func assert(ok bool, what string) {
	if !ok {
		panic("assertion failed: " + what)
	}
}
