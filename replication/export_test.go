package replication

// AmplificationFrame is amplificationFrame, for FuzzDecode's seeds.
var AmplificationFrame = amplificationFrame
