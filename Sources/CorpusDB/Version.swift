/// The version of corpus recorded with every source, audit entry and (later) run.
public enum CorpusVersion {
    public static let string = "0.1.0"
}
