// Placeholder until this directory has real sources; delete then.
