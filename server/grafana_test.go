package server

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// deploy/grafana/hubbub.json parses as a Grafana dashboard, and every
// metric its queries name is one hubbub registers.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/hubbub.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		ID      int      `json:"id"`
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		GridPos struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Schema     int     `json:"schemaVersion"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("hubbub.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.Schema == 0 || len(d.Panels) == 0 {
		t.Fatalf("hubbub.json lacks uid, title, schemaVersion or panels")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("no datasource variable: the dashboard must not name one Prometheus")
	}

	docs := documented(allMetrics())
	name := regexp.MustCompile(`\bhubbub_[a-z0-9_]+`)
	ids := map[int]bool{}
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d has no title or size", p.ID)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: a query's data source is %q, want ${datasource}", p.Title, tg.Datasource.UID)
				}
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
					t.Errorf("panel %q: unbalanced query %s", p.Title, tg.Expr)
				}
				found := name.FindAllString(tg.Expr, -1)
				if len(found) == 0 {
					t.Errorf("panel %q: query %s names no hubbub metric", p.Title, tg.Expr)
				}
				for _, m := range found {
					if _, ok := docs[m]; ok {
						continue
					}
					base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
					if doc, ok := docs[base]; !ok || doc.Type != "histogram" {
						t.Errorf("panel %q queries %s, which hubbub does not register", p.Title, m)
					}
				}
			}
		}
	}
	walk(d.Panels)
	if queries < 10 {
		t.Errorf("only %d queries", queries)
	}
}
