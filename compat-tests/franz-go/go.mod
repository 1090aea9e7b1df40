// Pins franz-go for its own integration suite (pkg/kgo), which compat-tests/test_franz_go.py
// runs against DuctStream and the reference Kafka. setup.sh builds the test binary.
module ductstream.dev/franzgo-compat

go 1.26.0

require github.com/twmb/franz-go v1.22.3

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.1 // indirect
)
