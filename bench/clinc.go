package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// clinc is the CLINC150 intent dataset (Larson et al. 2019): 150 intents,
// 100 training utterances each, validation rows and out-of-scope rows.
type clinc struct {
	Train    [][2]string `json:"train"`
	Val      [][2]string `json:"val"`
	OOSTrain [][2]string `json:"oos_train"`
	OOSVal   [][2]string `json:"oos_val"`
}

// loadCLINC reads clinc150_train_val.json from dir.
func loadCLINC(dir string) (*clinc, error) {
	path := filepath.Join(dir, "clinc150_train_val.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CLINC150: %w (pass --clinc DIR)", err)
	}
	var c clinc
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if len(c.Train) == 0 || len(c.Val) == 0 || len(c.OOSTrain) == 0 || len(c.OOSVal) == 0 {
		return nil, fmt.Errorf("%s: want non-empty train, val, oos_train and oos_val splits", path)
	}
	return &c, nil
}

// routes groups the training split by intent, keeping at most perRoute
// utterances per intent (0 keeps all), in file order.
func (c *clinc) routes(perRoute int) (names []string, utterances map[string][]string) {
	utterances = map[string][]string{}
	for _, row := range c.Train {
		if perRoute == 0 || len(utterances[row[1]]) < perRoute {
			utterances[row[1]] = append(utterances[row[1]], row[0])
		}
	}
	for n := range utterances {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, utterances
}

// labelled is one eval row; Route nil means out of scope.
type labelled struct {
	Text  string  `json:"text"`
	Route *string `json:"route"`
}

// split is the held-out protocol: thresholds are fitted on the validation
// rows with an even index within their intent plus the even-indexed rows of
// oos_train and of oos_val, and measured on the odd-indexed rest, so no
// figure is tuned on the rows it reports. Both halves draw their
// out-of-scope rows from both sources: oos_train and oos_val differ (an
// untuned threshold catches 8 points fewer of oos_val), and a split along
// them would charge that shift to the fit.
func (c *clinc) split() (fit, test []labelled) {
	seen := map[string]int{}
	for _, row := range c.Val {
		intent := row[1]
		l := labelled{Text: row[0], Route: &intent}
		if seen[intent]%2 == 0 {
			fit = append(fit, l)
		} else {
			test = append(test, l)
		}
		seen[intent]++
	}
	for _, oos := range [][][2]string{c.OOSTrain, c.OOSVal} {
		for i, row := range oos {
			if i%2 == 0 {
				fit = append(fit, labelled{Text: row[0]})
			} else {
				test = append(test, labelled{Text: row[0]})
			}
		}
	}
	return fit, test
}

// writeJSONL writes rows as JSON lines.
func writeJSONL(path string, rows []labelled) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("encoding %s: %w", path, err)
		}
	}
	return writeFileAtomic(path, []byte(b.String()))
}

// routerDoc is what a bench router.json sets beside its routes; zero
// values are left out (the router's defaults). A nil Threshold leaves
// score_threshold null (the encoder's default).
type routerDoc struct {
	Scoring, Head, Aggregation string
	Threshold                  *float64
	MaxEmbedTokens             int
	LongText                   string
}

// routerJSON renders a LiteLLM router.json over the given routes.
func routerJSON(names []string, utterances map[string][]string, d routerDoc) ([]byte, error) {
	type route struct {
		Name           string   `json:"name"`
		Utterances     []string `json:"utterances"`
		ScoreThreshold *float64 `json:"score_threshold"`
	}
	doc := struct {
		EncoderType    string  `json:"encoder_type"`
		EncoderName    string  `json:"encoder_name"`
		Scoring        string  `json:"scoring,omitempty"`
		Head           string  `json:"head,omitempty"`
		Aggregation    string  `json:"aggregation,omitempty"`
		MaxEmbedTokens int     `json:"max_embed_tokens,omitempty"`
		LongText       string  `json:"long_text,omitempty"`
		Routes         []route `json:"routes"`
	}{EncoderType: "local", EncoderName: "all-MiniLM-L6-v2", Scoring: d.Scoring, Head: d.Head, Aggregation: d.Aggregation,
		MaxEmbedTokens: d.MaxEmbedTokens, LongText: d.LongText}
	for _, n := range names {
		doc.Routes = append(doc.Routes, route{Name: n, Utterances: utterances[n], ScoreThreshold: d.Threshold})
	}
	return json.MarshalIndent(doc, "", " ")
}

// clincConfig writes config.yaml for an auto router "clinc" with one mock
// model per intent and "oos" as the default, embedding with the local model
// (int8 when quantized).
func clincConfig(dir string, names []string, quantized bool) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `model_list:
  - model_name: clinc
    litellm_params:
      model: auto_router/clinc
      auto_router_config_path: router.json
      auto_router_default_model: oos
      auto_router_embedding_model: minilm
  - model_name: minilm
    litellm_params:
      model: local/all-MiniLM-L6-v2
    model_info:
      quantized: %t
  - model_name: oos
    litellm_params:
      model: mock/oos
      mock_response: out of scope
`, quantized)
	for _, n := range names {
		fmt.Fprintf(&b, "  - model_name: %s\n    litellm_params:\n      model: mock/%s\n      mock_response: %s\n", n, n, n)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	return path, writeFileAtomic(path, []byte(b.String()))
}
