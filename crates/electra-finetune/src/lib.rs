//! electra-finetune
