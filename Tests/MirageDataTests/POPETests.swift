import Foundation
import Testing
@testable import MirageData
import MirageTestSupport

@Suite struct POPEQuestionFileTests {
    static let expected: [(String, Int, Int, Int, String)] = [
        // path, questions, no-count, typo questions, detected variant
        ("pope/rucaibox/coco_pope_random.json", 3000, 1500, 0, "rucaibox/random (= vcd/random)"),
        ("pope/rucaibox/coco_pope_popular.json", 3000, 1500, 0, "rucaibox/popular"),
        ("pope/rucaibox/coco_pope_adversarial.json", 3000, 1500, 0, "rucaibox/adversarial"),
        ("pope/opera/coco_pope_random.json", 2910, 1410, 144, "opera/random"),
        ("pope/opera/coco_pope_popular.json", 3000, 1500, 44, "opera/popular"),
        ("pope/opera/coco_pope_adversarial.json", 3000, 1500, 58, "opera/adversarial"),
        ("pope/vcd/coco_pope_random.json", 3000, 1500, 0, "rucaibox/random (= vcd/random)"),
        ("pope/vcd/coco_pope_popular.json", 3000, 1500, 0, "vcd/popular"),
        ("pope/vcd/coco_pope_adversarial.json", 3000, 1500, 57, "vcd/adversarial"),
    ]

    @Test(.enabled(if: SharedData.has("pope/opera/coco_pope_random.json"), SharedData.missingMessage))
    func loadsAllNineSharedFilesWithVariants() throws {
        for (path, count, no, typos, variant) in Self.expected {
            let url = SharedData.url(path)
            let file = try POPEQuestionReader.load(url)
            #expect(file.questions.count == count, "\(path)")
            #expect(file.variant.no == no && file.variant.yes == 1500, "\(path)")
            #expect(file.variant.images == 500, "\(path)")
            #expect(file.variant.typoQuestions == typos, "\(path)")
            #expect(file.variant.name == variant, "\(path)")
            #expect(file.questions.first?.image == "COCO_val2014_000000310196.jpg")
            #expect(file.questions.first?.cocoImageID == 310196)
            #expect(file.questions.map(\.questionID) == Array(1...count), "\(path)")
            // Writing the questions back reproduces the published bytes (Python json.dumps layout).
            #expect(POPEQuestionReader.jsonLines(file.questions, lineEnding: file.lineEnding) == (try Data(contentsOf: url)), "\(path) round trip")
        }
    }

    /// The published current files have the structure the builder produces: per image, in order,
    /// yes/no alternating over six distinct objects; OPERA's random file lacks 90 negatives.
    @Test(.enabled(if: SharedData.has("pope/rucaibox/coco_pope_random.json"), SharedData.missingMessage))
    func publishedFilesHaveTheConstructionStructure() throws {
        for split in POPESplit.allCases {
            let qs = try POPEQuestionReader.load(SharedData.url("pope/rucaibox/coco_pope_\(split.rawValue).json")).questions
            #expect(qs.allSatisfy { $0.object != nil }, "\(split)")
            for start in stride(from: 0, to: qs.count, by: 6) {
                let group = qs[start..<start + 6]
                #expect(Set(group.map(\.image)).count == 1)
                #expect(group.map(\.label) == [.yes, .no, .yes, .no, .yes, .no])
                #expect(Set(group.compactMap(\.object)).count == 6)
            }
        }
        let opera = try POPEQuestionReader.load(SharedData.url("pope/opera/coco_pope_random.json")).questions
        var perImage: [String: [POPEQuestion]] = [:]
        for q in opera { perImage[q.image, default: []].append(q) }
        #expect(perImage.values.allSatisfy { $0.filter { $0.label == .yes }.count == 3 })
        #expect(perImage.values.map { 3 - $0.filter { $0.label == .no }.count }.reduce(0, +) == 90)
        #expect(opera.first { $0.text.contains("imange") }?.object != nil)
    }

    @Test func unknownFileIsDescribedByCounts() throws {
        let text = """
        {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a dog in the image?", "label": "yes"}
        {"question_id": 2, "image": "COCO_val2014_000000000001.jpg", "text": "Is there an apple in the imange?", "label": "no"}

        """
        let f = try POPEQuestionReader.parse(Data(text.utf8))
        #expect(!f.variant.isKnown)
        #expect(f.variant.name == "unknown")
        #expect(f.variant.questions == 2 && f.variant.yes == 1 && f.variant.no == 1 && f.variant.images == 1)
        #expect(f.variant.typoQuestions == 1)
        #expect(f.sha256 == SHA256.hex(of: Data(text.utf8)))
        #expect(throws: POPEError.self) {
            try POPEQuestionReader.parse(Data(#"{"question_id": 1, "image": "a", "text": "t", "label": "maybe"}"#.utf8))
        }
        #expect(throws: POPEError.self) { try POPEQuestionReader.parse(Data("{\"question_id\": 1,\n".utf8)) }
    }
}

@Suite struct POPEBuilderTests {
    /// A hand-made instances file: 10 images, 9 categories, objects chosen so that frequencies and
    /// co-occurrences have clear leaders and some ties.
    static func groundTruth() throws -> [POPEImageObjects] {
        let names = [1: "person", 2: "dog", 3: "car", 4: "apple", 5: "umbrella", 6: "bench", 7: "cat", 8: "orange", 9: "kite"]
        let images: [(Int, [Int])] = [
            (10, [1, 2, 3, 1]), (11, [2, 1, 6]), (12, [3, 1, 5, 2]), (13, [4, 8, 1]), (14, [5, 1, 3]),
            (15, [6, 2, 7, 1]), (16, [7, 2, 1]), (17, [8, 4, 9]), (18, [9]), (19, [1, 3, 2, 9]),
        ]
        var json = "{\"images\": ["
        json += images.map { "{\"id\": \($0.0), \"file_name\": \"COCO_val2014_\(String(format: "%012d", $0.0)).jpg\"}" }.joined(separator: ", ")
        json += "], \"annotations\": ["
        json += images.flatMap { im in im.1.map { "{\"image_id\": \(im.0), \"category_id\": \($0)}" } }.joined(separator: ", ")
        json += "], \"categories\": ["
        json += names.sorted { $0.key < $1.key }.map { "{\"id\": \($0.key), \"name\": \"\($0.value)\"}" }.joined(separator: ", ")
        json += "]}"
        return try POPEBuilder.groundTruth(from: COCOReader.instances(data: Data(json.utf8)))
    }

    @Test func groundTruthKeepsFirstAnnotationOrder() throws {
        let gt = try Self.groundTruth()
        #expect(gt[0] == POPEImageObjects(image: "COCO_val2014_000000000010.jpg", objects: ["person", "dog", "car"]))
        #expect(gt[8].objects == ["kite"])
    }

    @Test func setsAreReproducibleAndSeedDependent() throws {
        let gt = try Self.groundTruth()
        let a = try POPEBuilder(images: 6, seed: 7).build(gt)
        let b = try POPEBuilder(images: 6, seed: 7).build(gt)
        #expect(a == b)
        let c = try POPEBuilder(images: 6, seed: 8).build(gt)
        #expect(a != c)
        // Building one split alone gives the same questions as building all three.
        let builder = POPEBuilder(images: 6, seed: 7)
        #expect(try builder.questions(pool: builder.samplePool(gt), split: .adversarial) == a[.adversarial])
    }

    @Test func questionsFollowTheConstructionRules() throws {
        let gt = try Self.groundTruth()
        let builder = POPEBuilder(images: 8, seed: 3)
        let pool = try builder.samplePool(gt)
        #expect(pool.count == 8)
        #expect(Set(pool.map(\.image)).count == 8)
        #expect(pool.allSatisfy { $0.objects.count >= 3 })
        let objectsOf = Dictionary(uniqueKeysWithValues: pool.map { ($0.image, $0.objects) })

        // Frequencies and co-occurrences over the pool, for the rule checks below.
        var freq: [String: Int] = [:], firstSeen: [String: Int] = [:]
        var co: [String: [String: Int]] = [:]
        for im in pool {
            for o in im.objects {
                freq[o, default: 0] += 1
                if firstSeen[o] == nil { firstSeen[o] = firstSeen.count }
                for other in im.objects where other != o { co[o, default: [:]][other, default: 0] += 1 }
            }
        }

        for split in POPESplit.allCases {
            let qs = try builder.questions(pool: pool, split: split)
            #expect(qs.count == 8 * 6, "\(split)")
            #expect(qs.map(\.questionID) == Array(1...48))
            for (k, group) in stride(from: 0, to: qs.count, by: 6).map({ ($0, Array(qs[$0..<$0 + 6])) }) {
                let image = group[0].image
                #expect(image == pool[k / 6].image, "pool order kept")
                #expect(group.allSatisfy { $0.image == image })
                #expect(group.map(\.label) == [.yes, .no, .yes, .no, .yes, .no], "pos/neg alternation")
                let objects = try #require(objectsOf[image])
                let asked = group.map { q in
                    String(q.text.dropFirst(q.text.hasPrefix("Is there an ") ? 12 : 11).dropLast(" in the image?".count))
                }
                #expect([asked[0], asked[2], asked[4]] == Array(objects.prefix(3)), "positives = first 3 objects")
                let negatives = [asked[1], asked[3], asked[5]]
                #expect(negatives.allSatisfy { !objects.contains($0) }, "negatives never present")
                #expect(Set(asked).count == 6, "nothing asked twice")
                for (i, neg) in negatives.enumerated() {
                    let used = Set(asked.prefix(2 * i + 1))
                    let candidates = freq.keys.filter { !objects.contains($0) && !used.contains($0) }
                    switch split {
                    case .random:
                        #expect(freq[neg] != nil, "drawn from the pool's objects")
                    case .popular:
                        let best = candidates.max { (freq[$0]!, -firstSeen[$0]!) < (freq[$1]!, -firstSeen[$1]!) }
                        #expect(neg == best, "popular = most frequent unused (\(image))")
                    case .adversarial:
                        let partners = co[asked[2 * i]] ?? [:]
                        let ranked = candidates.filter { partners[$0] != nil }
                        if !ranked.isEmpty {
                            let top = ranked.map { partners[$0]! }.max()!
                            #expect(partners[neg] == top, "adversarial = most co-occurring with \(asked[2 * i]) (\(image))")
                        }
                    }
                }
            }
        }
    }

    @Test func templateVowelRuleAndTypoOption() {
        #expect(POPEBuilder().text(for: "apple") == "Is there an apple in the image?")
        #expect(POPEBuilder().text(for: "dog") == "Is there a dog in the image?")
        #expect(POPEBuilder(reproduceTypo: true).text(for: "umbrella") == "Is there an umbrella in the imange?")
        #expect(POPEBuilder(reproduceTypo: true).text(for: "car") == "Is there a car in the image?")
    }

    @Test func tooFewImagesIsAClearError() throws {
        let gt = try Self.groundTruth()
        #expect(throws: POPEError.self) { try POPEBuilder(images: 10).build(gt) }
    }
}

@Suite struct SplitMix64Tests {
    /// Reference outputs of Vigna's splitmix64.c for state 0 (the sequence every port reproduces).
    @Test func matchesReferenceSequence() {
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
        #expect(g.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(g.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func uniformStaysInRangeAndCoversIt() {
        var g = SplitMix64(seed: 99)
        var seen = Set<Int>()
        for _ in 0..<1000 {
            let v = g.uniform(7)
            #expect((0..<7).contains(v))
            seen.insert(v)
        }
        #expect(seen.count == 7)
    }
}
