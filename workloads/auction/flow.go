package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Flows: our own generator over TCP (more deterministic than iperf3). The consumer connects
// to the winner's data port and sends a 9-byte header: direction ('d' provider -> consumer,
// 'u' consumer -> provider) and the byte count. For 'd' the provider writes the bytes; for
// 'u' it reads them and answers one byte. The consumer times each from connect to its last
// byte. The link's rate is the topology's; a faulty provider also paces itself to 1 MB/s
// (the original's tc cap on faulty providers, an application fault here).

const chunkBytes = 16 << 10

func serveFlows(host string, faulty bool) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(dataPort)))
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveFlow(c, faulty)
		}
	}()
	return nil
}

func serveFlow(c net.Conn, faulty bool) {
	defer c.Close()
	var header [9]byte
	if _, err := io.ReadFull(c, header[:]); err != nil {
		return
	}
	size := int64(binary.BigEndian.Uint64(header[1:]))
	p := newPacer(faulty)
	buf := make([]byte, chunkBytes)
	switch header[0] {
	case 'd':
		for sent := int64(0); sent < size; {
			n := min(int64(len(buf)), size-sent)
			p.wait(sent)
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
			sent += n
		}
	case 'u':
		for got := int64(0); got < size; {
			p.wait(got)
			n, err := c.Read(buf[:min(int64(len(buf)), size-got)])
			if err != nil {
				return
			}
			got += int64(n)
		}
		c.Write([]byte{1})
	}
}

// pacer holds a faulty provider to faultyCapMBps; an honest one goes as fast as the link.
type pacer struct {
	capped bool
	start  time.Time
}

func newPacer(capped bool) *pacer { return &pacer{capped: capped, start: time.Now()} }

func (p *pacer) wait(doneBytes int64) {
	if !p.capped {
		return
	}
	due := time.Duration(float64(doneBytes) / (faultyCapMBps * 1e6) * float64(time.Second))
	if ahead := due - time.Since(p.start); ahead > 0 {
		time.Sleep(ahead)
	}
}

// runFlow moves size bytes in one direction and returns the throughput in Mbit/s.
func runFlow(host string, dir byte, size int64) (float64, error) {
	assert(size > 0, "a flow moves bytes")
	start := time.Now()
	c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(dataPort)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var header [9]byte
	header[0] = dir
	binary.BigEndian.PutUint64(header[1:], uint64(size))
	if _, err := c.Write(header[:]); err != nil {
		return 0, err
	}
	switch dir {
	case 'd':
		if n, err := io.CopyN(io.Discard, c, size); err != nil {
			return 0, fmt.Errorf("download: %d of %d bytes: %v", n, size, err)
		}
	case 'u':
		buf := make([]byte, chunkBytes)
		for sent := int64(0); sent < size; {
			n := min(int64(len(buf)), size-sent)
			if _, err := c.Write(buf[:n]); err != nil {
				return 0, err
			}
			sent += n
		}
		var ack [1]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil {
			return 0, fmt.Errorf("upload ack: %v", err)
		}
	}
	elapsed := time.Since(start).Seconds()
	assert(elapsed > 0, "time passes during a flow")
	return float64(size) * 8 / elapsed / 1e6, nil
}
