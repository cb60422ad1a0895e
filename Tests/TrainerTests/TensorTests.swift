import Testing
@testable import ModelRuntime
@testable import Trainer

@Suite("Tensor")
struct TensorTests {
    @Test func shapeMustMatchData() throws {
        #expect(throws: ModelError.self) { try Tensor(shape: [2, 3], data: [1, 2, 3]) }
        let t = try Tensor(shape: [2, 2], data: [1, 2, 3, 4])
        #expect(t.count == 4)
        #expect(Tensor(zeros: [3, 5]).data == [Float](repeating: 0, count: 15))
    }
}
