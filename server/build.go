package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hubbub/hubbub/internal/buildinfo"
)

// registerBuildInfo exports hubbub_build_info{version,revision,goversion} 1,
// the usual Prometheus way to name the running build (join it on instance
// to label other series, or alert on mixed versions during an upgrade).
func registerBuildInfo(reg *prometheus.Registry, b buildinfo.Info) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "hubbub_build_info",
		Help:        "Always 1; the labels name the running build (revision is empty when unknown).",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	}, func() float64 { return 1 }))
}
