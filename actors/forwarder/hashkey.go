package forwarder

import (
	"fmt"
	"strings"

	"github.com/loadbalancer/loadbalancer/actors/forwarder/wire"
)

// HashSource says what a request's hash key (for the hash policy) is made of.
type HashSource uint8

const (
	// HashNone: requests carry no key.
	HashNone HashSource = iota
	// HashHeader: the value of the request header HashKey.Name.
	HashHeader
	// HashCookie: the value of the cookie HashKey.Name.
	HashCookie
	// HashClient: the client's IP address.
	HashClient
)

// HashKey configures the key of the hash policy.
type HashKey struct {
	Source HashSource
	// Name is the header or cookie name (HashHeader, HashCookie).
	Name string
}

// ParseHashKey parses "header:NAME", "cookie:NAME" or "client" (the command line's --hash-key).
func ParseHashKey(s string) (HashKey, error) {
	kind, name, _ := strings.Cut(s, ":")
	switch {
	case kind == "client" && name == "":
		return HashKey{Source: HashClient}, nil
	case (kind == "header" || kind == "cookie") && name != "" && validToken(name):
		if kind == "header" {
			return HashKey{Source: HashHeader, Name: name}, nil
		}
		return HashKey{Source: HashCookie, Name: name}, nil
	}
	return HashKey{}, fmt.Errorf("forwarder: hash key %q: want client, header:NAME or cookie:NAME", s)
}

// String formats k as ParseHashKey reads it.
func (k HashKey) String() string {
	switch k.Source {
	case HashHeader:
		return "header:" + k.Name
	case HashCookie:
		return "cookie:" + k.Name
	case HashClient:
		return "client"
	}
	return ""
}

// hashKeyOf is the hash policy's key of req from a client at clientIP, as k says: none when
// the request lacks the header or cookie (it is then balanced as the policy does without a
// key). It allocates nothing.
func hashKeyOf(k *HashKey, req *wire.RequestHead, clientIP []byte) (uint64, bool) {
	switch k.Source {
	case HashHeader:
		if v := fieldValue(req.Fields, k.Name); v != nil {
			return fnv1a(v), true
		}
	case HashCookie:
		if v, ok := cookieValue(req.Fields, k.Name); ok {
			return fnv1a(v), true
		}
	case HashClient:
		if len(clientIP) > 0 {
			return fnv1a(clientIP), true
		}
	}
	return 0, false
}

// cookieValue finds the cookie called name in the request's Cookie fields ("a=1; b=2").
func cookieValue(fields []wire.Field, name string) ([]byte, bool) {
	for i := range fields {
		if !wire.EqualFold(fields[i].Name, "Cookie") {
			continue
		}
		v := fields[i].Value
		for len(v) > 0 {
			var pair []byte
			if j := indexByte(v, ';'); j >= 0 {
				pair, v = v[:j], v[j+1:]
			} else {
				pair, v = v, nil
			}
			pair = trimSpace(pair)
			if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
				return pair[len(name)+1:], true
			}
		}
	}
	return nil, false
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// fnv1a is the 64-bit FNV-1a hash of b.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// validToken reports whether s is an HTTP token (a header or cookie name).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return s != ""
}
