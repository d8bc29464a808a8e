"""Private content found in outgoing text: pasted, reworded a little, or only a title; and
ordinary text that merely shares a few common words with it, not found."""

from __future__ import annotations

from node.guard.private_index import PrivateIndex, content_words

PRICING = ("Falcon pricing floor: we will not go below 41 euros per seat for the Globex renewal, and "
           "the board approved a further 6 percent discount only if they sign before the end of March.")


def _index(**settings) -> PrivateIndex:
    index = PrivateIndex(**settings)
    index.add("knowledge:1", PRICING)
    index.add_phrase("knowledge:1", "Falcon renewal pricing floor")
    index.add_phrase("private-thread:billing-escalations", "Billing escalations of key accounts")
    index.add_phrase("private-thread:launch", "Launch checklist")  # a label, not a secret
    index.add("private-message:7", "ok thanks")  # too short to be anyone's secret
    return index


def test_normal_form_drops_case_punctuation_common_words_and_plurals():
    assert content_words("The SEATS, of Falcon’s   renewal!") == ["seat", "falcon", "renewal"]
    assert content_words("ｆａｌｃｏｎ") == ["falcon"]  # fullwidth letters (NFKC)


def test_a_pasted_item_is_found():
    (hit,) = _index().match(PRICING)
    assert hit.source == "knowledge:1" and hit.share == 1.0


def test_a_slightly_reworded_paragraph_is_found():
    reworded = ("FYI — Falcon pricing floor: we won't go below 41 EUR per seat for Globex's renewal; the board "
                "approved a further 6% discount, but only if they sign before end of March.")
    hits = _index().match(f"Hi team, quick update. {reworded} Let me know.")
    assert [h.source for h in hits] == ["knowledge:1"]
    assert hits[0].share >= 0.5


def test_part_of_an_item_inside_a_long_answer_is_found():
    answer = ("Thanks for the questions about the rollout plan. The deployment happens in three waves. "
              "On pricing: the board approved a further 6 percent discount only if they sign before the end "
              "of March. The first wave starts on Monday with the EU tenants.")
    assert [h.source for h in _index().match(answer)] == ["knowledge:1"]


def test_text_that_shares_only_common_words_is_not_found():
    assert _index().match("We will sign the rollout plan before the end of March, as agreed.") == []
    assert _index().match("ok thanks") == []
    assert _index().match("Pricing is for the board to approve.") == []


def test_titles_of_four_words_or_more_match_as_phrases():
    hits = _index().match("Can you look at our billing-escalations of KEY accounts?")
    assert [h.source for h in hits] == ["private-thread:billing-escalations"]
    assert _index().match("key accounts' billing escalations") == []  # the words, not in that order
    assert _index().match("I checked the launch checklist") == []


def test_thresholds_decide():
    text = "the board approved a further 6 percent discount only if they sign"  # 6 runs, all the item's
    assert _index(min_shared=4, threshold=0.5).match(text)
    assert not _index(min_shared=7, threshold=0.5, enough_shared=8).match(text)
    long = f"{text}. " + "Then the rollout continues with wave two and wave three across all regions. " * 3
    assert not _index(min_shared=4, threshold=0.5, enough_shared=8).match(long)  # 6 of 30 runs: too few
    assert _index(min_shared=4, threshold=0.5, enough_shared=6).match(long)
