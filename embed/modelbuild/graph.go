package modelbuild

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Config is the part of a Hugging Face BERT config.json the graph needs.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	IntermediateSize      int     `json:"intermediate_size"`
	LayerNormEps          float64 `json:"layer_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	VocabSize             int     `json:"vocab_size"`
	TypeVocabSize         int     `json:"type_vocab_size"`
	HiddenAct             string  `json:"hidden_act"`
	ModelType             string  `json:"model_type"`
}

// ReadConfig reads and validates a BERT config.json.
func ReadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading model config: %w (run scripts/setup.sh to fetch it)", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks that the config describes a BERT encoder this builder can
// write.
func (c Config) Validate() error {
	switch {
	case c.ModelType != "" && c.ModelType != "bert":
		return fmt.Errorf("model_type %q is not supported; only \"bert\" encoders can be built", c.ModelType)
	case c.HiddenAct != "" && c.HiddenAct != "gelu":
		return fmt.Errorf("hidden_act %q is not supported; want \"gelu\"", c.HiddenAct)
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0:
		return fmt.Errorf("hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive")
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("hidden_size %d is not divisible by num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	return nil
}

// graph accumulates the nodes, initializers and value infos of one ONNX graph.
type graph struct {
	nodes   [][]byte
	inits   [][]byte
	inputs  [][]byte
	outputs [][]byte
	seq     int
	opts    GraphOptions
}

// GraphOptions says how BuildGraph writes the Linear layers.
type GraphOptions struct {
	// Quantize says which Linear weights become a com.microsoft
	// DynamicQuantizeMatMul with per-column int8 weights; nil quantises none.
	Quantize func(weight string) bool
	// Smooth holds, per smoothable Linear input (keyed as in
	// ActivationPoints), the largest |x| of each input channel seen on
	// calibration text. When every Linear reading that input is quantised,
	// channel j is divided by s_j = max|x_j|^α / max|W_j|^(1−α) and the
	// weights' input row j multiplied by it (SmoothQuant): the fp32 function
	// is unchanged, but the outlier channels, which would stretch the one
	// dynamic activation scale per tensor, move into the weights, whose
	// per-column scales absorb them.
	Smooth map[string][]float32
	// Alpha is the migration strength α of Smooth, in (0, 1).
	Alpha float64
	// Taps adds every ActivationPoints input as an extra graph output of that
	// name, for calibration.
	Taps bool
	// Outliers, with statistics for a quantised FFN output projection's
	// input (the GELU output) in Smooth, keeps that many of its input
	// channels, those with the largest calibration maxima, in an fp32
	// MatMul and quantises the rest: the few outlier channels no longer
	// stretch the one dynamic activation scale of the int8 part. Smoothing
	// them instead made the worst case worse: channels near zero on the
	// calibration text were scaled up into new outliers.
	Outliers int
}

// ActivationPoints returns the keys of GraphOptions.Smooth and of the taps
// with each input's channel count: the LayerNorm outputs read by the
// query/key/value projections and by the FFN intermediate dense of each
// layer, which are smoothed, and the GELU output read by the FFN output
// dense, whose outlier channels GraphOptions.Outliers keeps in fp32. The
// attention context is left alone: smoothing it lowered the worst int8 vs
// fp32 cosine on embed/testdata/sentences.txt.
func ActivationPoints(cfg Config) (keys []string, channels []int) {
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf(layerKeyFormat, l)
		keys = append(keys, p+pointQKV, p+pointFFNIn, p+pointFFNOut)
		channels = append(channels, cfg.HiddenSize, cfg.HiddenSize, cfg.IntermediateSize)
	}
	return keys, channels
}

// Names of the calibrated inputs of one encoder layer, after the prefix
// layerKeyFormat: the query, key and value projections share one input.
const (
	layerKeyFormat = "encoder.layer.%d."
	pointQKV       = "attention.self"
	pointFFNIn     = "intermediate.dense"
	pointFFNOut    = "output.dense"
)

func (g *graph) fresh(prefix string) string {
	g.seq++
	return prefix + "_" + strconv.Itoa(g.seq)
}

// op adds a node in the default domain and returns its single output.
func (g *graph) op(op string, inputs []string, attrs ...attr) string {
	out := g.fresh(op)
	g.nodes = append(g.nodes, encodeNode(out, op, "", inputs, []string{out}, attrs))
	return out
}

func (g *graph) constF(name string, dims []int64, vs []float32) string {
	g.inits = append(g.inits, encodeTensor(name, dtFloat, dims, float32Raw(vs)))
	return name
}

func (g *graph) constI64(name string, dims []int64, vs []int64) string {
	g.inits = append(g.inits, encodeTensor(name, dtInt64, dims, int64Raw(vs)))
	return name
}

func (g *graph) quantized(weight string) bool {
	return g.opts.Quantize != nil && g.opts.Quantize(weight)
}

// linear computes x·Wᵀ + b for a PyTorch Linear weight W of shape [out, in].
// A non-nil inScale multiplies W's input row i by inScale[i], undoing the
// smoothing division of x.
func (g *graph) linear(x string, w, b *Tensor, inScale []float32) string {
	out, in := w.Shape[0], w.Shape[1]
	// PyTorch stores [out, in]; MatMul wants [in, out].
	wt := make([]float32, len(w.Data))
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			v := w.Data[o*in+i]
			if inScale != nil {
				v *= inScale[i]
			}
			wt[i*out+o] = v
		}
	}
	g.constF(b.Name, []int64{int64(out)}, b.Data)
	if g.quantized(w.Name) {
		q, scale := quantizePerColumn(wt, in, out)
		g.inits = append(g.inits, encodeTensor(w.Name+".q", dtInt8, []int64{int64(in), int64(out)}, int8Raw(q)))
		g.constF(w.Name+".scale", []int64{int64(out)}, scale)
		g.inits = append(g.inits, encodeTensor(w.Name+".zp", dtInt8, []int64{int64(out)}, make([]byte, out)))
		res := g.fresh("DynamicQuantizeMatMul")
		g.nodes = append(g.nodes, encodeNode(res, "DynamicQuantizeMatMul", "com.microsoft",
			[]string{x, w.Name + ".q", w.Name + ".scale", w.Name + ".zp", b.Name}, []string{res}, nil))
		return res
	}
	g.constF(w.Name, []int64{int64(in), int64(out)}, wt)
	return g.op("Add", []string{g.op("MatMul", []string{x, w.Name}), b.Name})
}

// outlierChannels returns how many input channels of the quantised Linear
// w to keep in fp32: opts.Outliers when act holds calibration maxima of
// its input, else 0.
func (g *graph) outlierChannels(w *Tensor, act []float32) int {
	k := g.opts.Outliers
	if !g.quantized(w.Name) || k <= 0 || k >= w.Shape[1] || len(act) != w.Shape[1] {
		return 0
	}
	return k
}

// permuteHidden reorders the FFN's hidden channels by descending act: the
// intermediate dense's output rows and bias, and the output dense's input
// columns. The FFN computes the same function.
func permuteHidden(wi, bi, wo *Tensor, act []float32) (*Tensor, *Tensor, *Tensor) {
	hidden, in, out := wi.Shape[0], wi.Shape[1], wo.Shape[0]
	order := make([]int, hidden)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return act[order[i]] > act[order[j]] })
	pwi := &Tensor{Name: wi.Name, Shape: wi.Shape, Data: make([]float32, len(wi.Data))}
	pbi := &Tensor{Name: bi.Name, Shape: bi.Shape, Data: make([]float32, len(bi.Data))}
	pwo := &Tensor{Name: wo.Name, Shape: wo.Shape, Data: make([]float32, len(wo.Data))}
	for n, c := range order {
		copy(pwi.Data[n*in:(n+1)*in], wi.Data[c*in:(c+1)*in])
		pbi.Data[n] = bi.Data[c]
		for o := 0; o < out; o++ {
			pwo.Data[o*hidden+n] = wo.Data[o*hidden+c]
		}
	}
	return pwi, pbi, pwo
}

// linearSplit is linear for a weight w whose first hot input channels are
// multiplied in fp32 and the rest in int8, so that the few outlier channels
// don't stretch the one dynamic activation scale of the int8 part.
func (g *graph) linearSplit(x string, w, b *Tensor, hot int) string {
	out, in := w.Shape[0], w.Shape[1]
	xh, xc := g.fresh("hot"), g.fresh("cold")
	split := g.constI64(w.Name+".split", []int64{2}, []int64{int64(hot), int64(in - hot)})
	g.nodes = append(g.nodes, encodeNode(g.fresh("Split"), "Split", "", []string{x, split}, []string{xh, xc}, []attr{attrI("axis", -1)}))
	wh := make([]float32, hot*out) // [hot, out], as MatMul wants
	wc := &Tensor{Name: w.Name + ".int8part", Shape: []int{out, in - hot}, Data: make([]float32, out*(in-hot))}
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			if i < hot {
				wh[i*out+o] = w.Data[o*in+i]
			} else {
				wc.Data[o*(in-hot)+i-hot] = w.Data[o*in+i]
			}
		}
	}
	g.constF(w.Name+".fp32part", []int64{int64(hot), int64(out)}, wh)
	return g.op("Add", []string{g.linear(xc, wc, b, nil), g.op("MatMul", []string{xh, w.Name + ".fp32part"})})
}

// smooth divides x, the input key of the Linears ws, by its smoothing
// factors and returns the result with the factors, which the Linears must
// pass to linear as inScale. When key has no statistics or one of ws stays
// fp32, it returns x unchanged and nil factors.
//
// BERT normalises after the residual add, so the LayerNorm output is also the
// next residual and its gamma and beta cannot absorb 1/s: the division is a
// Mul node, cheap next to the matmuls it feeds.
func (g *graph) smooth(key, x string, ws ...*Tensor) (string, []float32) {
	act, ok := g.opts.Smooth[key]
	if !ok || len(ws) == 0 || len(act) != ws[0].Shape[1] {
		return x, nil
	}
	in := len(act)
	wmax := make([]float64, in)
	for _, w := range ws {
		if !g.quantized(w.Name) {
			return x, nil
		}
		for o := 0; o < w.Shape[0]; o++ {
			for i := 0; i < in; i++ {
				wmax[i] = max(wmax[i], math.Abs(float64(w.Data[o*in+i])))
			}
		}
	}
	s := make([]float32, in)
	inv := make([]float32, in)
	for i := range s {
		s[i] = 1
		if a := float64(act[i]); a > 0 && wmax[i] > 0 {
			s[i] = float32(math.Pow(a, g.opts.Alpha) / math.Pow(wmax[i], 1-g.opts.Alpha))
		}
		inv[i] = 1 / s[i]
	}
	return g.op("Mul", []string{x, g.constF(key+".smooth", []int64{int64(in)}, inv)}), s
}

// tap exposes x as the graph output key when taps are on.
func (g *graph) tap(key, x string, channels int) {
	if !g.opts.Taps {
		return
	}
	g.nodes = append(g.nodes, encodeNode("tap_"+key, "Identity", "", []string{x}, []string{key}, nil))
	g.outputs = append(g.outputs, encodeValueInfo(key, dtFloat,
		[]int64{0, 0, int64(channels)}, []string{"batch", "sequence", ""}))
}

// quantizePerColumn quantises a row-major [in, out] matrix symmetrically to
// int8, one scale per output column, so that outlier columns don't crush the
// precision of the others.
func quantizePerColumn(w []float32, in, out int) ([]int8, []float32) {
	scale := make([]float32, out)
	for j := 0; j < out; j++ {
		var m float32
		for i := 0; i < in; i++ {
			if a := float32(math.Abs(float64(w[i*out+j]))); a > m {
				m = a
			}
		}
		if m == 0 {
			m = 1
		}
		scale[j] = m / 127
	}
	q := make([]int8, len(w))
	for i := 0; i < in; i++ {
		for j := 0; j < out; j++ {
			v := math.Round(float64(w[i*out+j] / scale[j]))
			q[i*out+j] = int8(max(-127, min(127, v)))
		}
	}
	return q, scale
}

func (g *graph) layerNorm(x string, w, b *Tensor, eps float32) string {
	g.constF(w.Name, []int64{int64(len(w.Data))}, w.Data)
	g.constF(b.Name, []int64{int64(len(b.Data))}, b.Data)
	return g.op("LayerNormalization", []string{x, w.Name, b.Name}, attrI("axis", -1), attrF("epsilon", eps))
}

// weights looks tensors up by name and reports the first missing one.
type weights struct {
	m    map[string]*Tensor
	path string
	err  error
}

func (w *weights) get(name string, shape ...int) *Tensor {
	if w.err == nil {
		w.err = w.check(name, shape)
	}
	if w.err != nil {
		// Keep building with zeros so the graph code needs no error paths;
		// BuildGraph reports the first problem and discards the graph.
		n := 1
		for _, d := range shape {
			n *= d
		}
		return &Tensor{Name: name, Shape: shape, Data: make([]float32, n)}
	}
	t, ok := w.m[name]
	if !ok {
		t = w.m["bert."+name]
	}
	return &Tensor{Name: name, Shape: t.Shape, Data: t.Data}
}

// check reports a missing tensor or one of the wrong shape.
func (w *weights) check(name string, shape []int) error {
	t, ok := w.m[name]
	if !ok {
		// Some exports prefix every tensor with "bert.".
		t, ok = w.m["bert."+name]
	}
	if !ok {
		return fmt.Errorf("%s: tensor %q is missing; is this a BERT encoder checkpoint?", w.path, name)
	}
	if len(t.Shape) != len(shape) {
		return fmt.Errorf("%s: tensor %q has shape %v, want %v", w.path, name, t.Shape, shape)
	}
	for i := range shape {
		if t.Shape[i] != shape[i] {
			return fmt.Errorf("%s: tensor %q has shape %v, want %v", w.path, name, t.Shape, shape)
		}
	}
	return nil
}

// BuildGraph returns the serialised ONNX model of a BERT encoder with inputs
// input_ids, attention_mask and token_type_ids (int64, [batch, sequence]) and
// output last_hidden_state (float32, [batch, sequence, hidden]). With
// opts.Quantize, the Linear weights it accepts use int8 DynamicQuantizeMatMul.
func BuildGraph(cfg Config, tensors map[string]*Tensor, weightsPath string, opts GraphOptions) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	H, I := cfg.HiddenSize, cfg.IntermediateSize
	heads := cfg.NumAttentionHeads
	headDim := H / heads
	eps := float32(cfg.LayerNormEps)
	if eps == 0 {
		eps = 1e-12
	}
	w := &weights{m: tensors, path: weightsPath}
	g := &graph{opts: opts}

	dyn := []string{"batch", "sequence"}
	for _, name := range []string{"input_ids", "attention_mask", "token_type_ids"} {
		g.inputs = append(g.inputs, encodeValueInfo(name, dtInt64, []int64{0, 0}, dyn))
	}
	g.outputs = append(g.outputs, encodeValueInfo("last_hidden_state", dtFloat,
		[]int64{0, 0, int64(H)}, []string{"batch", "sequence", ""}))

	// Embeddings: word + position + token type, then LayerNorm.
	word := w.get("embeddings.word_embeddings.weight", cfg.VocabSize, H)
	pos := w.get("embeddings.position_embeddings.weight", cfg.MaxPositionEmbeddings, H)
	typ := w.get("embeddings.token_type_embeddings.weight", cfg.TypeVocabSize, H)
	for _, t := range []*Tensor{word, pos, typ} {
		g.constF(t.Name, []int64{int64(t.Shape[0]), int64(t.Shape[1])}, t.Data)
	}
	shape := g.op("Shape", []string{"input_ids"})
	seqLen := g.op("Gather", []string{shape, g.constI64("const_one_scalar", nil, []int64{1})}, attrI("axis", 0))
	positions := g.op("Range", []string{g.constI64("const_zero_scalar", nil, []int64{0}), seqLen, "const_one_scalar"})
	emb := g.op("Add", []string{
		g.op("Add", []string{
			g.op("Gather", []string{word.Name, "input_ids"}, attrI("axis", 0)),
			g.op("Gather", []string{typ.Name, "token_type_ids"}, attrI("axis", 0)),
		}),
		g.op("Gather", []string{pos.Name, positions}, attrI("axis", 0)),
	})
	x := g.layerNorm(emb, w.get("embeddings.LayerNorm.weight", H), w.get("embeddings.LayerNorm.bias", H), eps)

	// Extended attention mask: 0 where attended, -10000 where padded, shaped
	// [batch, 1, 1, sequence] to broadcast over heads and query positions.
	maskF := g.op("Cast", []string{"attention_mask"}, attrI("to", dtFloat))
	maskU := g.op("Unsqueeze", []string{maskF, g.constI64("const_axes_1_2", []int64{2}, []int64{1, 2})})
	inv := g.op("Sub", []string{g.constF("const_one_f", nil, []float32{1}), maskU})
	extMask := g.op("Mul", []string{inv, g.constF("const_mask_neg", nil, []float32{-10000})})

	splitShape := g.constI64("const_split_heads", []int64{4}, []int64{0, 0, int64(heads), int64(headDim)})
	mergeShape := g.constI64("const_merge_heads", []int64{3}, []int64{0, 0, int64(H)})
	scale := g.constF("const_attn_scale", nil, []float32{float32(math.Sqrt(float64(headDim)))})
	sqrt2 := g.constF("const_sqrt2", nil, []float32{float32(math.Sqrt2)})
	half := g.constF("const_half", nil, []float32{0.5})

	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf(layerKeyFormat, l)
		wq, bq := w.get(p+"attention.self.query.weight", H, H), w.get(p+"attention.self.query.bias", H)
		wk, bk := w.get(p+"attention.self.key.weight", H, H), w.get(p+"attention.self.key.bias", H)
		wv, bv := w.get(p+"attention.self.value.weight", H, H), w.get(p+"attention.self.value.bias", H)
		g.tap(p+pointQKV, x, H)
		xs, s := g.smooth(p+pointQKV, x, wq, wk, wv)
		heads := func(w, b *Tensor, perm ...int64) string {
			lin := g.linear(xs, w, b, s)
			return g.op("Transpose", []string{g.op("Reshape", []string{lin, splitShape})}, attrInts64("perm", perm...))
		}
		q := heads(wq, bq, 0, 2, 1, 3)
		k := heads(wk, bk, 0, 2, 3, 1)
		v := heads(wv, bv, 0, 2, 1, 3)
		scores := g.op("Div", []string{g.op("MatMul", []string{q, k}), scale})
		probs := g.op("Softmax", []string{g.op("Add", []string{scores, extMask})}, attrI("axis", -1))
		ctx := g.op("Transpose", []string{g.op("MatMul", []string{probs, v})}, attrInts64("perm", 0, 2, 1, 3))
		ctx = g.op("Reshape", []string{ctx, mergeShape})
		attn := g.linear(ctx, w.get(p+"attention.output.dense.weight", H, H), w.get(p+"attention.output.dense.bias", H), nil)
		x = g.layerNorm(g.op("Add", []string{attn, x}),
			w.get(p+"attention.output.LayerNorm.weight", H), w.get(p+"attention.output.LayerNorm.bias", H), eps)

		wi, bi := w.get(p+"intermediate.dense.weight", I, H), w.get(p+"intermediate.dense.bias", I)
		wo, bo := w.get(p+"output.dense.weight", H, I), w.get(p+"output.dense.bias", H)
		// With outliers kept apart, the FFN's hidden channels are reordered,
		// outliers first: the fp32 and int8 parts of the output projection
		// then read contiguous slices of the GELU output.
		hot := g.outlierChannels(wo, g.opts.Smooth[p+pointFFNOut])
		if hot > 0 {
			wi, bi, wo = permuteHidden(wi, bi, wo, g.opts.Smooth[p+pointFFNOut])
		}
		g.tap(p+pointFFNIn, x, H)
		xs, s = g.smooth(p+pointFFNIn, x, wi)
		inter := g.linear(xs, wi, bi, s)
		// GELU in the exact erf form PyTorch exports, which ORT fuses.
		erf := g.op("Erf", []string{g.op("Div", []string{inter, sqrt2})})
		gelu := g.op("Mul", []string{g.op("Mul", []string{inter, g.op("Add", []string{erf, "const_one_f"})}), half})
		g.tap(p+pointFFNOut, gelu, I)
		var out string
		if hot > 0 {
			out = g.linearSplit(gelu, wo, bo, hot)
		} else {
			out = g.linear(gelu, wo, bo, nil)
		}
		x = g.layerNorm(g.op("Add", []string{out, x}),
			w.get(p+"output.LayerNorm.weight", H), w.get(p+"output.LayerNorm.bias", H), eps)
	}
	if w.err != nil {
		return nil, w.err
	}
	g.nodes = append(g.nodes, encodeNode("output", "Identity", "", []string{x}, []string{"last_hidden_state"}, nil))

	var gb []byte
	for _, n := range g.nodes {
		gb = protowire.AppendTag(gb, 1, protowire.BytesType)
		gb = protowire.AppendBytes(gb, n)
	}
	gb = protowire.AppendTag(gb, 2, protowire.BytesType)
	gb = protowire.AppendString(gb, "bert_encoder")
	for _, t := range g.inits {
		gb = protowire.AppendTag(gb, 5, protowire.BytesType)
		gb = protowire.AppendBytes(gb, t)
	}
	for _, in := range g.inputs {
		gb = protowire.AppendTag(gb, 11, protowire.BytesType)
		gb = protowire.AppendBytes(gb, in)
	}
	for _, out := range g.outputs {
		gb = protowire.AppendTag(gb, 12, protowire.BytesType)
		gb = protowire.AppendBytes(gb, out)
	}
	opsets := []opset{{"", 17}}
	if opts.Quantize != nil {
		opsets = append(opsets, opset{"com.microsoft", 1})
	}
	return encodeModel(gb, opsets, "autorouter", BuilderVersion), nil
}

// BuilderVersion changes whenever the graph this package writes changes, so
// that setup rebuilds models built by an older version.
const BuilderVersion = "bertgraph/3"
