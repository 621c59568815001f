"""The Beam vocabulary pass: the composite transforms on a real (FnApi) runner."""

from __future__ import annotations

from edgepipe.components.statistics import vocabulary

TEXTS = ["The cat sat.", "the CAT, the hat", "A dog; don't!", "", "dog dog"]


def test_compute_vocabulary_counts_tokens_across_texts():
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    with TestPipeline(runner="FnApiRunner") as pipeline:
        texts = pipeline | beam.Create(TEXTS)
        # the 3, dog 3, cat 2; then the count-1 tokens by token: a, don't, hat, sat
        assert_that(texts | "All" >> vocabulary.ComputeVocabulary(size=20),
                    equal_to([["[PAD]", "[UNK]", "dog", "the", "cat", "a", "don't", "hat",
                               "sat"]]), label="all")
        assert_that(texts | "Frequent" >> vocabulary.ComputeVocabulary(size=20, min_count=2),
                    equal_to([["[PAD]", "[UNK]", "dog", "the", "cat"]]), label="frequent")
        assert_that(texts | "Small" >> vocabulary.ComputeVocabulary(size=4),
                    equal_to([["[PAD]", "[UNK]", "dog", "the"]]), label="small")


def test_vocabulary_of_no_texts_is_the_reserved_ids_and_token_lengths_are_counted():
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    with TestPipeline(runner="FnApiRunner") as pipeline:
        empty = pipeline | "Empty" >> beam.Create([], reshuffle=False).with_output_types(str)
        assert_that(empty | vocabulary.ComputeVocabulary(size=10),
                    equal_to([["[PAD]", "[UNK]"]]), label="empty")
        lengths = pipeline | "Texts" >> beam.Create(TEXTS) | vocabulary.TokenLengths()
        assert_that(lengths, equal_to([{3: 2, 4: 1, 0: 1, 2: 1}]), label="lengths")
