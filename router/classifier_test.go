package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router/internal/testenv"
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

// accuracy is the share of test points whose highest score is their class.
func accuracy(c *Classifier, test []float32, labels []int32, classes, dim int) float64 {
	probs := make([]float32, classes)
	correct := 0
	for i := range labels {
		c.ProbsInto(probs, test[i*dim:(i+1)*dim])
		best := 0
		for k := range probs {
			if probs[k] > probs[best] {
				best = k
			}
		}
		if int32(best) == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(labels))
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
	if acc := accuracy(c, test, testLabels, classes, dim); acc < 0.95 {
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

// TestClassifierHeadsAndAllocs trains each head on clusters that a linear head
// cannot separate well (two blobs per class on opposite sides), and checks
// learning, the round trip and allocation-free scoring.
func TestClassifierHeadsAndAllocs(t *testing.T) {
	// Class c owns cluster centres c and c+classes: a mixture of twelve
	// blobs in four dimensions, too many for six linear half-spaces.
	const classes, dim = 6, 4
	raw, rawLabels := clusters(2*classes, 40, dim, 0.05, 7)
	labels := make([]int32, len(rawLabels))
	for i, l := range rawLabels {
		labels[i] = l % classes
	}
	test, testRaw := heldOut(2*classes, 20, dim, 0.05, 7)
	testLabels := make([]int32, len(testRaw))
	for i, l := range testRaw {
		testLabels[i] = l % classes
	}
	linear, err := TrainClassifier(context.Background(), raw, dim, labels, classes, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mlp, err := TrainClassifier(context.Background(), raw, dim, labels, classes, TrainOptions{Hidden: 64, Epochs: 60})
	if err != nil {
		t.Fatal(err)
	}
	blended, err := mlp.WithSimilarity(raw, labels)
	if err != nil {
		t.Fatal(err)
	}
	linAcc, mlpAcc := accuracy(linear, test, testLabels, classes, dim), accuracy(mlp, test, testLabels, classes, dim)
	t.Logf("held out: linear %.3f, MLP %.3f", linAcc, mlpAcc)
	if mlpAcc < 0.9 || mlpAcc < linAcc+0.1 {
		t.Errorf("MLP head %.3f held out, linear %.3f: want the MLP to learn the mixture", mlpAcc, linAcc)
	}
	if acc := accuracy(blended, test, testLabels, classes, dim); acc < mlpAcc-0.02 {
		t.Errorf("blended head %.3f held out, its MLP %.3f", acc, mlpAcc)
	}
	if mlp.Hidden() != 64 || linear.Hidden() != 0 || !blended.Blended() || mlp.Blended() {
		t.Errorf("Hidden/Blended: mlp %d %v, linear %d, blended %v", mlp.Hidden(), mlp.Blended(), linear.Hidden(), blended.Blended())
	}
	// Training is deterministic for a seed.
	again, _ := TrainClassifier(context.Background(), raw, dim, labels, classes, TrainOptions{Hidden: 64, Epochs: 60})
	if !bytes.Equal(again.MarshalBinary("k"), mlp.MarshalBinary("k")) {
		t.Error("two MLP heads trained alike differ")
	}
	for _, tc := range []struct {
		name string
		c    *Classifier
	}{{"linear", linear}, {"mlp", mlp}, {"mlp+similarity", blended}} {
		t.Run(tc.name, func(t *testing.T) {
			back, err := UnmarshalClassifier(tc.c.MarshalBinary("k"), "k")
			if err != nil {
				t.Fatal(err)
			}
			if tc.c.Blended() {
				back, _ = back.WithSimilarity(raw, labels)
			}
			a, b := make([]float32, classes), make([]float32, classes)
			q := test[:dim]
			tc.c.ProbsInto(a, q)
			back.ProbsInto(b, q)
			for k := range a {
				if a[k] != b[k] {
					t.Fatalf("round trip changed score %d: %v, %v", k, a[k], b[k])
				}
			}
			if allocs := testing.AllocsPerRun(100, func() { tc.c.ProbsInto(a, q) }); allocs != 0 && !testenv.Race {
				t.Errorf("ProbsInto allocates %v times per call", allocs)
			}
		})
	}
	if _, err := TrainClassifier(context.Background(), raw, dim, labels, classes, TrainOptions{Hidden: 8, Dropout: 1}); err == nil {
		t.Error("dropout 1: want an error")
	}
}

// TestSimilarityBlend checks the blended score against its definition and
// that a query far from every utterance scores low even where the softmax
// is confident.
func TestSimilarityBlend(t *testing.T) {
	const classes, dim = 4, 16
	train, labels := clusters(classes, 30, dim, 0.1, 3)
	c, err := TrainClassifier(context.Background(), train, dim, labels, classes, TrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.WithSimilarity(train, labels)
	if err != nil {
		t.Fatal(err)
	}
	probs, blend := make([]float32, classes), make([]float32, classes)
	for _, q := range [][]float32{train[:dim], train[40*dim : 41*dim]} {
		c.ProbsInto(probs, q)
		b.ProbsInto(blend, q)
		for r := 0; r < classes; r++ {
			best := float32(0)
			for i, l := range labels {
				if int(l) == r {
					best = max(best, simd.Dot(train[i*dim:(i+1)*dim], q))
				}
			}
			want := math.Pow(float64(probs[r]), BlendAlpha) * math.Pow(float64(best), 1-BlendAlpha)
			if math.Abs(float64(blend[r])-want) > 1e-5 {
				t.Errorf("route %d: blended %v, want p^α·s^(1−α) = %v (p %v, s %v)", r, blend[r], want, probs[r], best)
			}
		}
	}
	// Far from everything: orthogonal to the centres' span is not
	// available in 16 dims, so take the negated mean of all utterances.
	far := make([]float32, dim)
	for i := range labels {
		for k := range far {
			far[k] -= train[i*dim+k]
		}
	}
	simd.Normalize(far)
	c.ProbsInto(probs, far)
	b.ProbsInto(blend, far)
	pMax, bMax := float32(0), float32(0)
	for r := range probs {
		pMax, bMax = max(pMax, probs[r]), max(bMax, blend[r])
	}
	if bMax >= pMax || bMax > 0.5 {
		t.Errorf("far query: top probability %.3f, top blended score %.3f; want the blend to doubt it", pMax, bMax)
	}
	if _, err := c.WithSimilarity(train[:dim], labels); err == nil {
		t.Error("mismatched vectors: want an error")
	}
}

// TestClassifierReadsVersion1 reads a head in the format before MLP heads.
func TestClassifierReadsVersion1(t *testing.T) {
	const classes, dim = 3, 4
	var blob bytes.Buffer
	blob.WriteString("ARHEAD1\n")
	blob.Write(binary.LittleEndian.AppendUint16(nil, 1))
	blob.WriteString("k")
	blob.Write(binary.LittleEndian.AppendUint32(nil, dim))
	blob.Write(binary.LittleEndian.AppendUint32(nil, classes))
	for i := 0; i < classes*dim+classes; i++ {
		v := float32(0)
		if i < classes*dim && i%dim == i/dim { // w = identity rows
			v = 1
		}
		blob.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
	}
	blob.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(blob.Bytes())))
	c, err := UnmarshalClassifier(blob.Bytes(), "k")
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, classes)
	c.ProbsInto(p, []float32{0, 1, 0, 0})
	if c.Hidden() != 0 || !(p[1] > p[0] && p[1] > p[2]) {
		t.Fatalf("version 1 head: hidden %d, probabilities %v", c.Hidden(), p)
	}
	// A version 2 blob claiming an absurd hidden layer is refused.
	two := c.MarshalBinary("k")
	binary.LittleEndian.PutUint32(two[8+2+1+8:], 1<<30)
	two = append(two[:len(two)-4], binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(two[:len(two)-4]))...)
	if _, err := UnmarshalClassifier(two, "k"); err == nil || !strings.Contains(err.Error(), "inconsistent size") {
		t.Fatalf("huge hidden layer: err = %v", err)
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

// TestRouterJSONHeads loads the test router with each router.json head:
// every head routes the prompt, the MLP head is cached beside the linear
// one, and a bad head is an error naming the choices.
func TestRouterJSONHeads(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	for _, head := range []string{"linear+similarity", "mlp", "mlp+similarity"} {
		t.Run(head, func(t *testing.T) {
			path := writeTestConfig(t, dir, `, "scoring": "classifier", "head": "`+head+`"`)
			s := newTestClient(t, path, cache, nil)
			d, err := s.RouteText(context.Background(), "auto", "write a go function that sorts a slice of ints")
			if err != nil {
				t.Fatal(err)
			}
			if d.Model != "coder" || d.Score <= 0 || d.Score > 1 {
				t.Fatalf("head %s: decision %+v", head, d)
			}
		})
	}
	heads, _ := filepath.Glob(filepath.Join(cache, "head-*.bin"))
	if len(heads) != 2 {
		t.Errorf("cached heads %v: want the linear one and the MLP one", heads)
	}
	path := writeTestConfig(t, dir, `, "scoring": "classifier", "head": "forest"`)
	if _, err := Open(context.Background(), path, Options{ModelsDir: testenv.ModelsDir(t), CacheDir: cache}); err == nil || !strings.Contains(err.Error(), `head "forest"`) {
		t.Errorf("bad head: err = %v", err)
	}
}

// BenchmarkProbsInto scores one query with each head at CLINC150's size:
// 150 routes of 100 utterances, 384 dimensions.
func BenchmarkProbsInto(b *testing.B) {
	const classes, per, dim = 150, 100, 384
	vecs, labels := clusters(classes, per, dim, 0.5, 11)
	linear, err := TrainClassifier(context.Background(), vecs, dim, labels, classes, TrainOptions{Epochs: 1})
	if err != nil {
		b.Fatal(err)
	}
	mlp, err := TrainClassifier(context.Background(), vecs, dim, labels, classes, TrainOptions{Epochs: 1, Hidden: 512})
	if err != nil {
		b.Fatal(err)
	}
	blended, _ := linear.WithSimilarity(vecs, labels)
	for _, h := range []struct {
		name string
		c    *Classifier
	}{{"linear", linear}, {"mlp", mlp}, {"linear+similarity", blended}} {
		b.Run(h.name, func(b *testing.B) {
			dst := make([]float32, classes)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				h.c.ProbsInto(dst, vecs[(i%(classes*per))*dim:][:dim])
			}
		})
	}
}
