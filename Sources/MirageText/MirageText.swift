// MirageText: CHAIR's text pipeline, reproducing NLTK 3.8.1 exactly: Punkt sentence splitting, the
// Treebank word tokenizer as `word_tokenize` applies it, the averaged-perceptron POS tagger and WordNet's
// morphological lemmatizer.
