package server

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hubbub/hubbub/broker"
	"github.com/hubbub/hubbub/cluster"
	"github.com/hubbub/hubbub/internal/buildinfo"
	"github.com/hubbub/hubbub/websub"
)

// allMetrics is a registry holding every hubbub_ metric a node can have,
// in either mode (the fan-out ones exist only with --store redis), for the
// reference table and its tests.
func allMetrics() *metrics {
	m := newMetrics(broker.New())
	registerNodeInfo(m, "NODE", "VERSION")
	registerBuildInfo(m, buildinfo.Info{})
	registerFanoutMetrics(m, &cluster.Stats{})
	newWebhookMetrics(m)
	registerFeedMetrics(m, func() float64 { return 0 })
	registerBacklogMetrics(m, func() *websub.Backlog { return nil }, time.Now)
	return m
}

// MetricsReference writes the Markdown table of every hubbub_ metric
// (name, type, labels, meaning), sorted by name: the README's table.
func MetricsReference(w io.Writer) {
	docs := slices.Clone(allMetrics().docs)
	slices.SortFunc(docs, func(a, b metricDoc) int { return strings.Compare(a.Name, b.Name) })
	fmt.Fprintln(w, "| Metric | Type | Labels | Meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, d := range docs {
		labels := ""
		if len(d.Labels) > 0 {
			labels = "`" + strings.Join(d.Labels, "`, `") + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", d.Name, d.Type, labels, strings.ReplaceAll(d.Help, "|", `\|`))
	}
}
