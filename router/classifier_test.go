package router

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/simd"
)

// clusters makes n unit vectors per class around random class centres.
func clusters(classes, n, dim int, noise float32, seed uint64) ([]float32, []int32) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	centres := make([][]float32, classes)
	for c := range centres {
		centres[c] = make([]float32, dim)
		for k := range centres[c] {
			centres[c][k] = float32(r.NormFloat64())
		}
		simd.Normalize(centres[c])
	}
	var vecs []float32
	var labels []int32
	for c := 0; c < classes; c++ {
		for i := 0; i < n; i++ {
			v := make([]float32, dim)
			for k := range v {
				v[k] = centres[c][k] + noise*float32(r.NormFloat64())
			}
			simd.Normalize(v)
			vecs = append(vecs, v...)
			labels = append(labels, int32(c))
		}
	}
	return vecs, labels
}

// heldOut draws fresh points around the same centres as clusters(seed).
func heldOut(classes, n, dim int, noise float32, seed uint64) ([]float32, []int32) {
	all, labels := clusters(classes, 40+n, dim, noise, seed)
	var vecs []float32
	var out []int32
	for i, l := range labels {
		if i%(40+n) >= 40 {
			vecs = append(vecs, all[i*dim:(i+1)*dim]...)
			out = append(out, l)
		}
	}
	return vecs, out
}

func TestClassifierLearnsAndRoundTrips(t *testing.T) {
	const classes, dim = 8, 32
	train, labels := clusters(classes, 40, dim, 0.15, 1)
	c, err := TrainClassifier(context.Background(), train, dim, labels, classes, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	test, testLabels := heldOut(classes, 20, dim, 0.15, 1)
	probs := make([]float32, classes)
	correct := 0
	for i := range testLabels {
		c.ProbsInto(probs, test[i*dim:(i+1)*dim])
		best := 0
		for k := range probs {
			if probs[k] > probs[best] {
				best = k
			}
		}
		if int32(best) == testLabels[i] {
			correct++
		}
	}
	if acc := float64(correct) / float64(len(testLabels)); acc < 0.95 {
		t.Fatalf("accuracy %.2f on separable clusters", acc)
	}
	blob := c.MarshalBinary("key-1")
	back, err := UnmarshalClassifier(blob, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	p2 := make([]float32, classes)
	back.ProbsInto(p2, test[:dim])
	c.ProbsInto(probs, test[:dim])
	for k := range probs {
		if probs[k] != p2[k] {
			t.Fatal("round trip changed the head")
		}
	}
	flipped := append([]byte(nil), blob...)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct {
		name, key string
		data      []byte
		want      string
	}{
		{"other key", "key-2", blob, "other utterances"},
		{"bit flip", "key-1", flipped, "checksum"},
		{"truncated", "key-1", blob[:20], "not a classifier head"},
		{"garbage", "key-1", []byte("nope"), "not a classifier head"},
	} {
		if _, err := UnmarshalClassifier(tc.data, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := TrainClassifier(context.Background(), train, dim, labels, 1, TrainOptions{}); err == nil {
		t.Error("one route: want an error")
	}
}

func TestClassifierScoringMode(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	path := writeTestConfig(t, dir, `, "scoring": "classifier"`)
	s := newTestClient(t, path, cache, nil)
	d, err := s.RouteText(context.Background(), "auto", "write a go function that sorts a slice of ints")
	if err != nil {
		t.Fatal(err)
	}
	if d.Model != "coder" || d.Score < 0.2 || d.Score > 1 {
		t.Fatalf("classifier decision %+v", d)
	}
	var sum float32
	for _, sc := range d.Scores {
		sum += sc.Score
	}
	if sum > 1.0001 {
		t.Fatalf("probabilities sum to %v", sum)
	}
	// The second start loads the cached head instead of training.
	s2 := newTestClient(t, path, cache, nil)
	d2, _ := s2.RouteText(context.Background(), "auto", "write a go function that sorts a slice of ints")
	if d2.Score != d.Score {
		t.Fatalf("cached head scores %v, trained head %v", d2.Score, d.Score)
	}
}
