// Package framegen makes the camera frames of the smart-traffic example
// (examples/traffic): a crossroads seen from above, with vehicles queueing
// in four approach lanes and crossing on their green, over a textured,
// noisy background. Nothing is downloaded; every frame follows from a seed
// and a camera number, so a benchmark and a test can make the same frames
// again and know what is in them.
//
// Each [Frame] carries its ground truth: the vehicles drawn and, per lane,
// how many of them the pipeline should count (drawn area at least
// [MinArea] pixels, centroid inside the lane). Vehicles in one lane keep a
// gap, and lanes are apart, so the blobs the detect stage finds are the
// vehicles, one each: the stages' counts must equal the truth.
//
// It also holds the Go side of the frame format, [DecodePair] and
// [EncodePGMPair], which mirror the C decoder (examples/traffic/stages) so
// tests can check it, and which a fuzz target holds to the same inputs.
//
// It has no I/O and no global state; cmd/framegen writes frames to files,
// and hyper-bench's camera mode sends them to a daemon.
package framegen
