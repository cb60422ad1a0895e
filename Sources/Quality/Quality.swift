/// Quality checks: normalization, duplicates, filters, PII and reports (issue 3).
/// Nothing lives here yet; the module exists so the dependency direction is fixed from the start.
public enum QualityModule {}
