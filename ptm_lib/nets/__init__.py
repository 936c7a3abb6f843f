"""The course's networks, one module each, and the registry that rebuilds them from checkpoints.

    registry     register, build, ARCHITECTURES, config_to_dict / config_from_dict
    common       trim_padding, masked_mean, as_bool_mask, count_params
    mlp          MLPConfig, MLP (flattened digits -> class logits)
    transformer  TransformerConfig, TransformerLM (encoder/decoder), TransformerClassifier, EncoderDecoder
    lstm         LSTM encoder/decoder, sequence autoencoder, LSTM classifier
"""
