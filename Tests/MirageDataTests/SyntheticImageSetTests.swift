import Foundation
import Testing
import MirageData
import MirageEngine
import MirageImaging
import MirageMetrics
import MirageText
import MirageTestSupport

private func writtenSet(_ set: SyntheticImageSet) throws -> (SyntheticImageSet.Files, URL) {
    let root = TestTemporary.root.appendingPathComponent("mirage-imageset-\(UUID().uuidString)")
    return (try set.write(to: root), root)
}

@Test func syntheticImagesDecodeToTheDrawnPixels() throws {
    let set = SyntheticImageSet(images: 4, size: 96, seed: 5)
    let (files, root) = try writtenSet(set)
    defer { try? FileManager.default.removeItem(at: root) }
    #expect(files.scenes.map(\.fileName) == files.scenes.map { String(format: "COCO_val2014_%012d.jpg", $0.id) })
    for scene in files.scenes {
        let image = try ImageDecoder.load(path: files.imageDirectory.appendingPathComponent(scene.fileName).path)
        #expect(image.width == 96 && image.height == 96)
        let drawn = set.render(scene)
        // Every object is visible in the drawing (it paints at least one pixel in its own colour).
        for object in scene.objects { #expect(object.area > 0 && object.color.count == 3) }
        // JPEG at quality 95, 4:4:4 chroma: ≈ 1 mean error, 42–43 dB here; the error is ringing at shape edges.
        var absSum = 0, squares = 0
        for (a, b) in zip(image.pixels, drawn) {
            let d = Int(a) - Int(b)
            absSum += abs(d); squares += d * d
        }
        let mean = Double(absSum) / Double(drawn.count)
        let psnr = 10 * log10(255.0 * 255.0 / (Double(squares) / Double(drawn.count)))
        #expect(mean < 2, "mean absolute error \(mean) in \(scene.fileName)")
        #expect(psnr > 38, "PSNR \(psnr) dB in \(scene.fileName)")
        // The centre pixel of the topmost object is its colour (within JPEG tolerance).
        let top = scene.objects.last!
        let (cx, cy) = (top.x + top.width / 2, top.y + top.height * 2 / 3)
        if top.contains(cx, cy) {
            let o = (cy * 96 + cx) * 3
            for c in 0..<3 { #expect(abs(Int(image.pixels[o + c]) - Int(top.color[c])) <= 24) }
        }
    }
    // Deterministic: the same seed gives the same bytes.
    let (again, root2) = try writtenSet(set)
    defer { try? FileManager.default.removeItem(at: root2) }
    for url in [files.instances, files.captions, files.imageDirectory.appendingPathComponent(files.scenes[0].fileName)]
        + files.popeQuestions.values.sorted(by: { $0.path < $1.path }) {
        let twin = root2.appendingPathComponent(String(url.path.dropFirst(root.path.count + 1)))
        #expect(try Data(contentsOf: url) == Data(contentsOf: twin), "\(url.lastPathComponent) differs between two writes")
    }
    #expect(again.scenes == files.scenes)
}

@Test func syntheticAnnotationsAndPOPEFilesLoadWithTheReaders() throws {
    let set = SyntheticImageSet(images: 6, size: 64, seed: 2)
    let (files, root) = try writtenSet(set)
    defer { try? FileManager.default.removeItem(at: root) }
    let instances = try COCOReader.instances(at: files.instances)
    #expect(instances.images.map(\.id) == files.scenes.map(\.id))
    #expect(instances.images.map(\.fileName) == files.scenes.map(\.fileName))
    #expect(instances.categories.count == 80)
    let objects = try instances.objectsByImage()
    for scene in files.scenes {
        #expect(objects[scene.id] == scene.objects.map(\.category.name))
    }
    let captions = try COCOReader.captions(at: files.captions)
    #expect(captions.captions.count == 6 * set.captionsPerImage)
    for scene in files.scenes { #expect(captions.captionsByImage[scene.id] == scene.captions) }

    #expect(Set(files.popeQuestions.keys) == Set(POPESplit.allCases))
    for (split, url) in files.popeQuestions {
        let file = try POPEQuestionReader.load(url)
        #expect(file.questions.count == 6 * 6, "\(split)")   // 6 images × 3 objects × (yes + no)
        #expect(file.questions.filter { $0.label == .yes }.count == 18)
        for q in file.questions {
            let scene = try #require(files.scenes.first { $0.fileName == q.image })
            let present = scene.objects.map(\.category.name).contains(q.object ?? "")
            #expect(present == (q.label == .yes), "\(q.text) on \(q.image)")
        }
    }
}

/// CHAIR's ground truth built from the synthetic files (the real NLTK pipeline) is exactly the node words
/// of the drawn categories: the captions mention only drawn objects.
@Test(.enabled(if: SharedData.has("chair/synonyms.txt", "nltk/punkt_tab/english", "nltk/averaged_perceptron_tagger_eng")
               && FileManager.default.fileExists(atPath: "/usr/share/wordnet/index.noun"),
               "skipped: needs ../shared/data (chair/, nltk/) and WordNet in /usr/share/wordnet (Debian wordnet-base)"))
func chairGroundTruthBuildsFromSyntheticAnnotations() throws {
    let set = SyntheticImageSet(images: 5, size: 48, seed: 9)
    let (files, root) = try writtenSet(set)
    defer { try? FileManager.default.removeItem(at: root) }
    let vocabulary = try ChairVocabulary(contentsOf: SharedData.url("chair/synonyms.txt"))
    let pipeline = try ChairTextPipeline(punktDirectory: SharedData.url("nltk/punkt_tab/english"),
                                         taggerDirectory: SharedData.url("nltk/averaged_perceptron_tagger_eng"),
                                         wordnetDirectory: URL(fileURLWithPath: "/usr/share/wordnet"))
    let result = try ChairGroundTruthBuilder(vocabulary: vocabulary, analyzer: pipeline)
        .build(instanceFiles: [files.instances], captionFiles: [files.captions], cacheDirectory: nil,
               pipelineVersion: ChairTextPipeline.version)
    #expect(result.groundTruth.imageCount == 5)
    for scene in files.scenes {
        let expected = Set(scene.objects.compactMap { vocabulary.nodeWordByEntry[$0.category.name] })
        #expect(expected.count == scene.objects.count)
        #expect(result.groundTruth.objects(for: scene.id) == expected, "\(scene.fileName)")
    }
}
