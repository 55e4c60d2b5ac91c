import ArgumentParser
import MirageCLISupport

/// The `mirage` command line. Each subcommand lives in its own file in this folder.
@main
struct Mirage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirage",
        abstract: "Measure and reduce object hallucination in multimodal LLMs.",
        discussion: """
        Score captions with CHAIR, probe with POPE, run models and decoders on the CPU, and keep every run \
        in a SQLite store you can compare and export.
        """,
        version: MirageVersion.string,
        subcommands: [
            // Subcommands are registered here, one line each, in the order a user meets them.
            DataCommand.self,
            ChairCommand.self,
            POPECommand.self,
            Import.self,
            Runs.self,
            Compare.self,
            Check.self,
            Merge.self,
            Demo.self,
            Attention.self,
            Analyze.self,
            Report.self,
            Export.self,
            Reproduce.self,
            Models.self,
            Generate.self,
            Decoders.self,
            Inspect.self,
            RunCommand.self,
        ]
    )
}
