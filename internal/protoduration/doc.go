// Package protoduration reads and writes durations in the JSON form of
// google.protobuf.Duration ("1.5s", "0.000100s", "300s"): the one grammar
// of every duration in the library's JSON, the gRPC service config and the
// endpoint policy's load-balancing config alike, as gRPC's own configs
// (retryPolicy, outlier detection) write them. Go's form ("1m30s") is not
// accepted: a config that only this library reads would not be one a gRPC
// user can write from the proto documentation.
//
// The functions are pure and safe for concurrent use.
package protoduration
