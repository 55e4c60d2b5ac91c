import Foundation
import Testing
import MirageMetrics
import MirageTestSupport

/// A small synonym list in the reference layout (hand-written for these tests).
let miniSynonyms = """
person, man, woman, baby, passenger, adult
dog, puppy
elephant
train, locomotive
airplane, jet
hot dog
traffic light, stoplight
tie, bow
toilet, urinal
chair, seat
wine glass
"""

@Suite struct ChairVocabularyTests {
    let vocabulary = try! ChairVocabulary(synonymsText: miniSynonyms)

    func mentions(_ lemmas: String) -> [String] {
        vocabulary.words(fromLemmas: lemmas.split(separator: " ").map(String.init)).mentions
            .map { "\($0.nodeWord)@\($0.tokenIndex)" }
    }

    @Test func parsesHeadsAndEntries() {
        #expect(vocabulary.nodeWords.count == 11)
        #expect(vocabulary.nodeWord(for: "puppy") == "dog")
        #expect(vocabulary.nodeWord(for: "stoplight") == "traffic light")
        #expect(vocabulary.nodeWord(for: "cat") == nil)
    }

    @Test func mergesTwoWordTableLeftToRight() {
        let found = vocabulary.words(fromLemmas: ["a", "hot", "dog", "near", "a", "traffic", "light"])
        #expect(found.words == ["a", "hot dog", "near", "a", "traffic light"])
        #expect(mentions("a hot dog near a traffic light") == ["hot dog@1", "traffic light@5"])
        // Greedy: "hot dog" is taken first, so the second "dog" stands alone.
        #expect(mentions("hot dog dog") == ["hot dog@0", "dog@2"])
        // "train track" and "home plate" merge into non-objects, so "train" does not fire.
        #expect(mentions("a train track") == [])
        #expect(vocabulary.words(fromLemmas: ["a", "train", "track"]).words == ["a", "train track"])
    }

    @Test func babyAndAdultQualifiersDoNotFirePerson() {
        #expect(mentions("a baby elephant") == ["elephant@1"])
        #expect(mentions("an adult dog") == ["dog@1"])
        // "cub" and "animal" are not objects: the merged word is dropped.
        #expect(mentions("a baby cub") == [])
        // Without an animal after it, "baby" is a person.
        #expect(mentions("a baby sleeps") == ["person@1"])
    }

    @Test func passengerQualifierMapsToTheVehicle() {
        #expect(mentions("a passenger jet") == ["airplane@1"])
        #expect(mentions("a passenger train") == ["train@1"])
        #expect(mentions("a passenger waits") == ["person@1"])
    }

    @Test func overridesWin() {
        #expect(mentions("a bow tie") == ["tie@1"])
        #expect(mentions("a wine glas") == ["wine glass@1"])
        #expect(mentions("the toilet seat") == ["toilet@1"])
    }

    @Test func toiletRemovesEverySeat() {
        #expect(mentions("the seat of the toilet") == ["toilet@4"])
        #expect(mentions("a seat and a seat by a urinal") == ["chair@1", "chair@4", "toilet@7"])
        #expect(mentions("a seat by the toilet and a seat") == ["toilet@4"])
        // The raw words keep the seats: Len counts them.
        #expect(vocabulary.words(fromLemmas: ["seat", "toilet"]).words == ["seat", "toilet"])
    }

    @Test func duplicatesAreKept() {
        #expect(mentions("dog puppy dog") == ["dog@0", "dog@1", "dog@2"])
    }

    @Test func emptySynonymListIsAnError() {
        #expect(throws: ChairError.self) { try ChairVocabulary(synonymsText: "\n  \n") }
    }

    @Test(.enabled(if: SharedData.has("chair/synonyms.txt"), SharedData.missingMessage))
    func referenceListQuirks() throws {
        let v = try ChairVocabulary(contentsOf: SharedData.url("chair/synonyms.txt"))
        // 80 categories, 416 entries of which 403 distinct (reference doc §2.2).
        #expect(v.nodeWords.count == 80)
        #expect(v.entries.count == 416)
        #expect(Set(v.entries).count == 403)
        // Double spaces keep a leading space: "motor bike" and "cheesecake" never count.
        #expect(v.nodeWord(for: " motor bike") == "motorcycle")
        #expect(v.words(fromLemmas: ["a", "motor", "bike"]).mentions.isEmpty)
        #expect(v.words(fromLemmas: ["a", "cheesecake"]).mentions.isEmpty)
        #expect(v.nodeWord(for: " cheesecake") == "cake")
        // "iPhone" is capitalised in the list; captions are lower-cased.
        #expect(v.nodeWord(for: "iphone") == nil)
        // "stove top oven" has three words and never merges; stove and oven count separately.
        #expect(v.words(fromLemmas: ["stove", "top", "oven"]).mentions.map(\.nodeWord) == ["oven", "oven"])
        // Ambiguous entries count as objects.
        #expect(v.nodeWord(for: "bow") == "tie")
        #expect(v.nodeWord(for: "table") == "dining table")
        #expect(v.nodeWord(for: "bagel") == "donut")
    }
}
