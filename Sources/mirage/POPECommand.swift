import ArgumentParser
import Foundation
import MirageData

/// `mirage pope`: build POPE question sets and identify question files.
struct POPECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pope",
        abstract: "Build POPE question sets from COCO annotations, or identify a POPE question file.",
        discussion: """
        POPE (Li et al., EMNLP 2023) asks "Is there a <object> in the image?" for 3 objects that are in each \
        image and 3 that are not, chosen at random, among the most frequent objects (popular) or among the \
        objects that co-occur most with the positive (adversarial). To score answers, use \
        `mirage import pope` (it records the run); the answer parsers are documented there.
        """,
        subcommands: [Build.self, Info.self])

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build random/popular/adversarial question sets with a fixed seed.",
            discussion: """
            Follows RUCAIBox/POPE's construction rules exactly (see docs/data.md): images with at least 3 \
            objects are sampled without replacement; per image the first 3 objects (in annotation order) are \
            the positives, each followed by one negative that is neither in the image nor already asked. \
            Randomness comes from SplitMix64 seeded with --seed, so the same inputs and seed give the same \
            files on every machine. POPE itself used an unseeded generator: its published files cannot be \
            regenerated, only their construction rule.

            Examples:
              mirage pope build --out pope-seed0                  (COCO val2014 from the data store)
              mirage pope build --instances instances_val2014.json --seed 7 --split adversarial --out out/
              mirage pope build --objects coco_ground_truth_segmentation.json --reproduce-typo --out out/
            """)

        @Option(help: ArgumentHelp("COCO instances file (default: instances_val2014.json of the data store's coco-annotations-2014).", valueName: "file"))
        var instances: String?
        @Option(help: ArgumentHelp("Per-image objects as POPE's JSON lines {\"image\", \"objects\"} instead of COCO instances.", valueName: "file"))
        var objects: String?
        @Option(help: "Images in the set.") var images = 500
        @Option(help: "Positive (and negative) questions per image.") var perImage = 3
        @Option(help: "Seed of the SplitMix64 generator.") var seed: UInt64 = 0
        @Option(help: ArgumentHelp("Split to build: random, popular or adversarial (default: all three).", valueName: "split"))
        var split: String?
        @Option(help: "Question template; {} is the object.") var template = POPEBuilder.defaultTemplate
        @Flag(help: "Reproduce POPE's original a→an bug for vowel objects (\"Is there an apple in the imange?\").")
        var reproduceTypo = false
        @Option(help: ArgumentHelp("File-name prefix: <prefix>_pope_<split>.json.", valueName: "name")) var prefix = "coco"
        @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String

        func validate() throws {
            if instances != nil && objects != nil { throw ValidationError("give either --instances or --objects, not both") }
            if let split, POPESplit(rawValue: split) == nil {
                throw ValidationError("--split must be random, popular or adversarial")
            }
            if !template.contains("{}") { throw ValidationError("--template must contain {} where the object goes") }
        }

        func run() throws {
            if let objects { try InputFile.check(objects, option: "--objects") }
            if let instances { try InputFile.check(instances, option: "--instances") }
            let groundTruth: [POPEImageObjects]
            if let objects {
                groundTruth = try POPEImageObjects.load(URL(fileURLWithPath: objects))
            } else {
                let url = try instances.map { URL(fileURLWithPath: $0) }
                    ?? DataStore().locate("coco-annotations-2014", file: "instances_val2014.json")
                groundTruth = try POPEBuilder.groundTruth(from: COCOReader.instances(at: url))
            }
            let builder = POPEBuilder(images: images, positivesPerImage: perImage, seed: seed,
                                      template: template, reproduceTypo: reproduceTypo)
            let pool = try builder.samplePool(groundTruth)
            let folder = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let splits = split.flatMap(POPESplit.init(rawValue:)).map { [$0] } ?? POPESplit.allCases
            print("pool: \(pool.count) of \(groundTruth.filter { $0.objects.count >= perImage }.count) eligible images, seed \(seed)")
            for s in splits {
                let questions = try builder.questions(pool: pool, split: s)
                let data = POPEQuestionReader.jsonLines(questions)
                let url = folder.appendingPathComponent("\(prefix)_pope_\(s.rawValue).json")
                try data.write(to: url, options: .atomic)
                print("\(s.rawValue): \(questions.count) questions -> \(url.path) (sha256 \(SHA256.hex(of: data)))")
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Identify POPE question files: published variant, counts, typo, checksum.",
            discussion: """
            Known files (by SHA-256): RUCAIBox/POPE @ 3df3ba1 (rucaibox), OPERA's older copies (opera: the \
            random split has 2,910 questions and some questions read "imange") and VCD's (vcd). Any other \
            file is described by its counts.
            """)

        @Argument(help: ArgumentHelp("Question files (JSON lines).", valueName: "file")) var files: [String]

        func run() throws {
            for path in files { try InputFile.check(path, option: "question file") }
            for path in files {
                let f = try POPEQuestionReader.load(URL(fileURLWithPath: path))
                print("\(path): \(f.variant)")
                for k in f.variant.known { print("    \(k.variant)/\(k.split.rawValue): \(k.note)") }
            }
        }
    }
}
