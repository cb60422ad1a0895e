import Testing

@Test func placeholderCorpusDBTests() { #expect(1 + 1 == 2) }
