package main

import (
	"math"
	"testing"
)

func TestFmtSplit(t *testing.T) {
	tests := []struct {
		name   string
		shares []float64
		want   string
	}{
		{name: "unknown", shares: nil, want: "-"},
		{name: "a NaN", shares: []float64{0.5, math.NaN()}, want: "-"},
		{name: "two even", shares: []float64{0.5, 0.5}, want: "50/50"},
		// A half point goes to the first of equal remainders, as math.Round gave it before.
		{name: "two, half points", shares: []float64{0.495, 0.505}, want: "50/50"},
		{name: "direct", shares: []float64{1, 0}, want: "100/0"},
		// Three shares that round to 101 or 99 each still add up to 100.
		{name: "thirds", shares: []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, want: "34/33/33"},
		{name: "largest remainders", shares: []float64{0.456, 0.456, 0.088}, want: "46/45/9"},
		// Medians across rounds need not add up to 1: they are shown as shares of their sum.
		{name: "not normalised", shares: []float64{0.48, 0.48, 0.05}, want: "48/47/5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmtSplit(tt.shares); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCounters(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		httpserver bool
		want       counters
		wantErr    bool
	}{
		{name: "stub_status", body: "Active connections: 2 \nserver accepts handled requests\n 5 5 6 \nReading: 0 Writing: 1 Waiting: 1 \n",
			want: counters{requests: 6, accepts: 5}},
		// httpserver's /healthcheck: "<errors>\n<entries>"; it does not count connections.
		{name: "healthcheck", body: "3\n1234", httpserver: true, want: counters{requests: 1234, accepts: -1}},
		{name: "healthcheck, trailing newline", body: "0\n7\n", httpserver: true, want: counters{requests: 7, accepts: -1}},
		{name: "healthcheck, one line", body: "7", httpserver: true, wantErr: true},
		{name: "stub_status cut short", body: "Active connections: 2\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCounters(tt.body, tt.httpserver)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want one: %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
