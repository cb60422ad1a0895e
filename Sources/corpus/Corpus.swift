import ArgumentParser
import CorpusDB
import Foundation

/// The program's entry: files and folders corpus creates are the owner's alone (mode 0600 and 0700):
/// the store and its WAL hold patients' and clients' questions, and exports, adapters, reports and
/// logs are made from them (docs/RELIABILITY.md). `umask` sets it for every file of the process,
/// whichever code creates it; files that exist keep their modes.
@main
enum CorpusMain {
    static func main() async {
        umask(0o077)
        await Corpus.main()
    }
}

/// The `corpus` command: question-answer data in, fine-tuned adapters out, everything on record.
struct Corpus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "corpus",
        abstract: "Curate question-answer data into a SQLite corpus with provenance, and train on it.",
        discussion: """
            Exit codes: 0 success; 1 unexpected internal error; 3 an input file could not be \
            ingested (the others were), a model file is unusable or its name is taken, or an option \
            value is invalid; 4 the store cannot be opened or is newer than this build, or is busy (another \
            command is writing; CORPUS_BUSY_TIMEOUT), or its disk is full; \
            5 a record, source, model or evaluation that was asked for does not exist; 6 a verification \
            found a change; 7 `corpus eval --fail-under`: a metric missed its threshold (the evaluation \
            is stored and printed first); 64 invalid command-line usage; \
            130 interrupted (Ctrl-C), nothing half-written. See docs/EXIT_CODES.md.
            """,
        version: CorpusVersion.string,
        subcommands: [
            InitCommand.self, IngestCommand.self, StatusCommand.self, SourcesCommand.self,
            RecordsCommand.self, ShowCommand.self, RejectsCommand.self, LogCommand.self, CheckCommand.self, ReportCommand.self, DupsCommand.self, SnapshotCommand.self, TrainCommand.self, MergeCommand.self, AdaptersCommand.self, LineageCommand.self, ForgetCommand.self, ModelsCommand.self, RunsCommand.self, EvalCommand.self, EvalsCommand.self,
            TokenizeCommand.self, ScoreCommand.self, GenerateCommand.self, ChatCommand.self, BenchCommand.self, ServeCommand.self,
        ]
    )
}
