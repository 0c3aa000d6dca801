package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"

	"github.com/autorouter/autorouter/simd"
)

// Classifier is a linear softmax head over frozen sentence embeddings: one
// weight row and one bias per route, trained on the routes' utterances
// (multinomial logistic regression). It is immutable once trained.
type Classifier struct {
	dim, routes int
	w           []float32 // routes × dim, row-major
	b           []float32
}

// TrainOptions tunes training. Zero values mean the defaults.
type TrainOptions struct {
	// Epochs over the utterances. Default 30.
	Epochs int
	// LearningRate of Adam. Default 0.02.
	LearningRate float64
	// L2 is the weight decay. Default 1e-5: on CLINC150 (150 routes of 100
	// utterances) 1e-4 underfits, 97% on the training utterances and 93%
	// held out, while 1e-5 reaches 99.6% and 95.8%.
	L2 float64
	// Seed makes training deterministic. Default 1.
	Seed uint64
}

// TrainClassifier fits the head on unit-length vectors (n × dim, row-major)
// with labels[i] in [0, numRoutes), by mini-batch Adam on the softmax
// cross-entropy. It checks ctx between batches.
func TrainClassifier(ctx context.Context, vecs []float32, dim int, labels []int32, numRoutes int, opts TrainOptions) (*Classifier, error) {
	n := len(labels)
	if dim <= 0 || numRoutes < 2 || n == 0 || len(vecs) != n*dim {
		return nil, fmt.Errorf("classifier: need at least 2 routes and one utterance each; got %d routes, %d labels, %d floats of dimension %d", numRoutes, n, len(vecs), dim)
	}
	for i, l := range labels {
		if l < 0 || int(l) >= numRoutes {
			return nil, fmt.Errorf("classifier: utterance %d has route %d of %d", i, l, numRoutes)
		}
	}
	if opts.Epochs <= 0 {
		opts.Epochs = 30
	}
	if opts.LearningRate <= 0 {
		opts.LearningRate = 0.02
	}
	if opts.L2 <= 0 {
		opts.L2 = 1e-5
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	c := &Classifier{dim: dim, routes: numRoutes, w: make([]float32, numRoutes*dim), b: make([]float32, numRoutes)}
	// Adam state for weights and biases.
	mw, vw := make([]float64, len(c.w)), make([]float64, len(c.w))
	mb, vb := make([]float64, numRoutes), make([]float64, numRoutes)
	gw, gb := make([]float32, len(c.w)), make([]float32, numRoutes)
	logits := make([]float32, numRoutes)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	const batch = 128
	const b1, b2, eps = 0.9, 0.999, 1e-8
	step := 0
	totalSteps := opts.Epochs * ((n + batch - 1) / batch)
	for epoch := 0; epoch < opts.Epochs; epoch++ {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < n; start += batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			clear(gw)
			clear(gb)
			idx := order[start:min(start+batch, n)]
			for _, i := range idx {
				x := vecs[i*dim : (i+1)*dim]
				c.logitsInto(logits, x)
				softmax(logits)
				logits[labels[i]] -= 1 // dL/dlogit = p - y
				for r, g := range logits {
					if g > -1e-4 && g < 1e-4 {
						continue
					}
					row := gw[r*dim : (r+1)*dim]
					for k, xv := range x {
						row[k] += g * xv
					}
					gb[r] += g
				}
			}
			step++
			scale := 1 / float64(len(idx))
			c1, c2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
			// Cosine decay to zero: constant-rate Adam keeps bouncing around
			// the optimum, so heads trained with different seeds or route
			// orders would differ by a point of accuracy.
			lr := opts.LearningRate * 0.5 * (1 + math.Cos(math.Pi*float64(step-1)/float64(totalSteps)))
			for k := range c.w {
				g := float64(gw[k])*scale + opts.L2*float64(c.w[k])
				mw[k] = b1*mw[k] + (1-b1)*g
				vw[k] = b2*vw[k] + (1-b2)*g*g
				c.w[k] -= float32(lr * (mw[k] / c1) / (math.Sqrt(vw[k]/c2) + eps))
			}
			for r := range c.b {
				g := float64(gb[r]) * scale
				mb[r] = b1*mb[r] + (1-b1)*g
				vb[r] = b2*vb[r] + (1-b2)*g*g
				c.b[r] -= float32(lr * (mb[r] / c1) / (math.Sqrt(vb[r]/c2) + eps))
			}
		}
	}
	return c, nil
}

func (c *Classifier) logitsInto(dst, x []float32) {
	dst = simd.MatVec_Into(dst, c.w, x)
	for r := range dst {
		dst[r] += c.b[r]
	}
}

// softmax turns logits into probabilities in place.
func softmax(v []float32) {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	var s float32
	for i, x := range v {
		v[i] = float32(math.Exp(float64(x - m)))
		s += v[i]
	}
	for i := range v {
		v[i] /= s
	}
}

// ProbsInto writes each route's probability for the unit-length query into
// dst (len = number of routes).
func (c *Classifier) ProbsInto(dst, query []float32) {
	c.logitsInto(dst, query)
	softmax(dst)
}

// classifierMagic starts a serialised head; the digit is the format version.
var classifierMagic = []byte("ARHEAD1\n")

// MarshalBinary serialises the head with key, which the caller derives
// from everything the training depended on, and a checksum.
func (c *Classifier) MarshalBinary(key string) []byte {
	var b bytes.Buffer
	b.Write(classifierMagic)
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(key))))
	b.WriteString(key)
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(c.dim)))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(c.routes)))
	for _, v := range c.w {
		b.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
	}
	for _, v := range c.b {
		b.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
	}
	b.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(b.Bytes())))
	return b.Bytes()
}

// UnmarshalClassifier reads a head written by MarshalBinary. It fails,
// without panicking, on a corrupt blob or one trained under another key.
func UnmarshalClassifier(data []byte, key string) (*Classifier, error) {
	if len(data) < len(classifierMagic)+2+8+4 || !bytes.Equal(data[:len(classifierMagic)], classifierMagic) {
		return nil, errors.New("not a classifier head")
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, errors.New("classifier head checksum mismatch")
	}
	r := body[len(classifierMagic):]
	kl := int(binary.LittleEndian.Uint16(r))
	r = r[2:]
	if len(r) < kl+8 || string(r[:kl]) != key {
		return nil, errors.New("classifier head was trained on other utterances or another model")
	}
	r = r[kl:]
	dim, routes := int(binary.LittleEndian.Uint32(r)), int(binary.LittleEndian.Uint32(r[4:]))
	r = r[8:]
	if dim <= 0 || routes <= 0 || len(r) != 4*(routes*dim+routes) {
		return nil, errors.New("classifier head has an inconsistent size")
	}
	c := &Classifier{dim: dim, routes: routes, w: make([]float32, routes*dim), b: make([]float32, routes)}
	for i := range c.w {
		c.w[i] = math.Float32frombits(binary.LittleEndian.Uint32(r[4*i:]))
	}
	r = r[4*len(c.w):]
	for i := range c.b {
		c.b[i] = math.Float32frombits(binary.LittleEndian.Uint32(r[4*i:]))
	}
	return c, nil
}
