//! electra-train
