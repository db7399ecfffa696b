package tokenizer

import "testing"

func TestFixtureTokenizer(t *testing.T) {
	data, err := FixtureJSON()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.EncodeZImage("hé")
	for _, id := range ids {
		if id < 0 || id >= FixtureVocabSize {
			t.Fatalf("id %d outside the fixture vocabulary", id)
		}
	}
	if pad, err := tok.PadID(); err != nil || pad != 256 {
		t.Fatalf("pad %d %v", pad, err)
	}
	text, err := tok.Decode(tok.Encode("hé"))
	if err != nil || text != "hé" {
		t.Fatalf("round trip %q %v", text, err)
	}
	if got := len(tok.Encode("hé")); got != 3 {
		t.Fatalf("byte-level: %d ids for 3 bytes", got)
	}
}
