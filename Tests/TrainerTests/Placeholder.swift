import Testing

@Test func placeholderTrainerTests() { #expect(1 + 1 == 2) }
