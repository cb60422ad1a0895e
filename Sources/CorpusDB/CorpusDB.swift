import GRDB
public enum CorpusDBModule {}
