"""The compressed-computation model (y = W_out ReLU(W_in x)) and its study."""
