@testable import CorpusSupport
import Foundation
import Testing

/// The inline-SVG line charts of the training pages.
@Suite("LineChart")
struct LineChartTests {
    @Test func roundTicks() {
        let loss = LineChart.ticks(1.93, 2.87)
        #expect(loss.spacing == 0.2)
        #expect(LineChart.tickLabels(loss.values, spacing: loss.spacing) == ["2.0", "2.2", "2.4", "2.6", "2.8"])
        let steps = LineChart.ticks(1, 30, integers: true)
        #expect(steps.values == [5, 10, 15, 20, 25, 30])
        let few = LineChart.ticks(0, 2, integers: true)
        #expect(few.values == [0, 1, 2])
    }

    @Test func smallValuesArePowersOfTen() {
        let rate = LineChart.ticks(0, 2.1e-4)
        #expect(rate.spacing == 5e-5)
        #expect(LineChart.tickLabels(rate.values, spacing: rate.spacing) == ["0", "5.0e-5", "1.0e-4", "1.5e-4", "2.0e-4"])
    }

    @Test func negativeValues() {
        let ticks = LineChart.ticks(-1.2, 0.3)
        #expect(LineChart.tickLabels(ticks.values, spacing: ticks.spacing) == ["-1.0", "-0.5", "0.0"])
    }

    @Test func seriesDotsTooltipsAndEscapedNames() {
        let chart = LineChart(title: "Rewards <chosen>", series: [
            ("rewards/chosen", [(1, 0.5), (2, 0.75), (3, 1.0)]),
            ("kl & \"more\"", [(2, -0.25)]),
        ])
        let html = chart.html()
        #expect(html.hasPrefix("<div class=\"chart\"><h3>Rewards &lt;chosen&gt;</h3>"))
        #expect(html.contains("<polyline data-series=\"rewards/chosen\""))
        #expect(html.contains("<polyline data-series=\"kl &amp; &quot;more&quot;\""))
        #expect(html.contains("<title>rewards/chosen · step 2: 0.75</title>"))
        #expect(html.contains("<title>kl &amp; &quot;more&quot; · step 2: -0.25</title>"))
        #expect(html.contains("<span><i style=\"background:#2a5bd7\"></i>rewards/chosen 1 at step 3</span>"))
        #expect(html.contains("<span><i style=\"background:#e8772e\"></i>kl &amp; &quot;more&quot; -0.25 at step 2</span>"))
        #expect(!html.contains("<chosen>"))
        #expect(html.components(separatedBy: "<circle ").count - 1 == 4)
    }

    /// The plot spans x 58…506 and y 10…214 of a 520 × 250 box; values 1…3 padded by 5 % of the range.
    @Test func coordinates() {
        let chart = LineChart(title: "t", series: [("s", [(0, 1), (10, 3)])])
        // x: 58 + step / 10 × 448; y: 10 + (3.1 − v) / 2.2 × 204.
        #expect(chart.svg().contains("points=\"58.0,204.7 506.0,19.3\""))
    }

    @Test func valuesThatAreNotNumbersAreLeftOutAndCounted() {
        let chart = LineChart(title: "loss", series: [("train loss", [(1, 2), (2, .nan), (3, .infinity), (4, 1.5)])])
        let html = chart.html()
        #expect(html.contains("<p class=\"note\">2 values are not a finite number (NaN or infinite) and not drawn.</p>"))
        let svg = chart.svg()
        #expect(!svg.contains("nan") && !svg.contains("inf"))
        #expect(html.components(separatedBy: "<circle ").count - 1 == 2)
    }

    @Test func anEmptyChartSaysSo() {
        let html = LineChart(title: "kl", series: [("kl", [])]).html()
        #expect(html.contains(">no values recorded</text>"))
        #expect(html.contains("kl (no values)"))
    }

    @Test func longSeriesAreThinnedKeepingSpikes() {
        var points: [LineChart.Point] = (1...10_000).map { ($0, 1.0) }
        points[4_321] = (4_322, 50)
        let thinned = LineChart.thinned(points)
        #expect(thinned.count <= LineChart.drawLimit)
        #expect(thinned.contains { $0.step == 4_322 && $0.value == 50 })
        #expect(thinned.map(\.step) == thinned.map(\.step).sorted())
        let svg = LineChart(title: "t", series: [("s", points)]).svg()
        #expect(!svg.contains("<circle"))
    }

    /// TensorBoard's debiased exponential smoothing: w = 1 − 1/2; (0.5·2)/0.5 = 2, then
    /// (0.5·1 + 0.5·4)/0.75.
    @Test func runningMean() {
        let mean = LineChart.runningMean([(1, 2), (2, 4), (5, 4)], span: 2)
        #expect(mean.map(\.step) == [1, 2, 5])
        #expect(mean.map(\.value) == [2, 2.5 / 0.75, 3.25 / 0.875])
        #expect(LineChart.meanSpan(61) == 2)
        #expect(LineChart.meanSpan(420) == 8)
    }

    /// A long noisy series named in `smoothed` is drawn faint with its running mean; others as they are.
    @Test func longNoisySeriesGetARunningMean() {
        let noisy: [LineChart.Point] = (1...100).map { ($0, $0 % 2 == 0 ? 1 : 2) }
        let chart = LineChart(title: "loss", series: [("train loss", noisy), ("eval loss", [(50, 1.5), (100, 1.4)])], smoothed: ["train loss", "eval loss"])
        let html = chart.html()
        #expect(html.contains("<polyline data-series=\"train loss\" fill=\"none\" stroke=\"#2a5bd7\" stroke-width=\"1.1\" stroke-opacity=\"0.35\""))
        #expect(html.contains("<polyline data-series=\"train loss (running mean)\""))
        #expect(!html.contains("eval loss (running mean)"))   // 2 points: drawn as they are
        #expect(html.contains("<p class=\"note\">Faint: every step; bold: the running mean (train loss over about 2 steps).</p>"))
        let plain = LineChart(title: "lr", series: [("learning rate", noisy)]).html()
        #expect(!plain.contains("running mean"))
    }

    @Test func chartsSectionHoldsEveryChart() {
        let html = LineChart.html([LineChart(title: "a", series: []), LineChart(title: "b", series: [])])
        #expect(html.hasPrefix("<div class=\"charts\">\n<div class=\"chart\"><h3>a</h3>"))
        #expect(html.components(separatedBy: "<div class=\"chart\">").count - 1 == 2)
    }
}
