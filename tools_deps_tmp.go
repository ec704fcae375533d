package main
import (
 _ "github.com/cockroachdb/pebble/v2"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "go.yaml.in/yaml/v3"
)
func main(){}
