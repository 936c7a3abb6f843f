"""Speech (chapter 6c): eSpeak NG synthesis by ctypes, a keyword task with held-out voices, an
unlabelled multilingual corpus, log-mel features, and a toy wav2vec 2.0 with its objectives.

    espeak    synthesize(text, voice, rate, pitch, seed): one waveform at 22,050 Hz
    data      voice_split, keyword_task, unlabelled_corpus, log_mel, mean_std_features
    wav2vec   Wav2VecConfig, Wav2Vec (conv feature encoder + transformer), masked contrastive
              (quantised targets, Gumbel-softmax, diversity loss) and utterance-level contrastive
              objectives, pretrain, load_pretrained
"""
