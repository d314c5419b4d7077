// attention_maps.h: from captured AttentionMaps to the grid the heat map draws (head and query selections:
// one head, a set of heads, every head; rows of a kind or one answer token) and where the cells lie on the
// original image (pad band and centre crop), on small synthetic maps.
#include "app/attention_maps.h"

#include <gtest/gtest.h>

#include "tests/gui/hand_maps.h"

using sdrpn::models::AttentionMaps;
using sdrpn::models::ImageFit;
using sdrpn::models::QueryKind;

namespace {

// 2 layers, 2 heads, a 2 × 2 image grid behind 1 extra key column; rows: last prompt, 2 question, 1 answer.
// value(layer, head, row, key) = 1000·layer + 100·head + 10·row + key.
AttentionMaps syntheticMaps() {
    AttentionMaps maps;
    maps.heads = 2;
    maps.imageKeys = 5;
    maps.imageSpans.push_back({10, 4, {2, 2}});
    maps.rows = {{20, 7, QueryKind::Question},
                 {21, 8, QueryKind::Question},
                 {22, 9, QueryKind::LastPrompt},
                 {23, 5, QueryKind::Answer}};
    for (int layer = 0; layer < 2; ++layer) {
        sdrpn::models::LayerAttention la;
        la.layer = layer * 7;
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 4; ++r)
                for (int k = 0; k < 5; ++k) la.values.push_back(float(1000 * layer + 100 * h + 10 * r + k));
        maps.layers.push_back(la);
    }
    return maps;
}

sdrpn::models::GridGeometry twoByTwo(int w, int h, ImageFit fit) {
    return sdrpn::models::makeGridGeometry(w, h, fit, 28, 14);
}

}  // namespace

TEST(AttentionMaps, SelectsHeadsAndQueryRows) {
    const AttentionMaps maps = syntheticMaps();
    const TokenGrid grid = imageTokenGrid(maps, twoByTwo(28, 28, ImageFit::Pad));
    ASSERT_EQ(grid.rows, 2);
    ASSERT_EQ(grid.cols, 2);

    MapSelection s;
    s.layerSlot = 1;
    s.head = 1;
    s.query = QueryChoice::LastPrompt;  // row 2
    EXPECT_EQ(attentionGrid(maps, s, grid), (std::vector<float>{1120, 1121, 1122, 1123}));

    s.query = QueryChoice::Question;  // rows 0 and 1: mean row term 5
    s.head = -1;                      // heads 0 and 1: mean head term 50
    EXPECT_EQ(attentionGrid(maps, s, grid), (std::vector<float>{1055, 1056, 1057, 1058}));

    s.layerSlot = 0;
    s.query = QueryChoice::Answer;  // row 3
    EXPECT_EQ(attentionGrid(maps, s, grid), (std::vector<float>{80, 81, 82, 83}));

    EXPECT_EQ(queryRows(maps, QueryChoice::Question), (std::vector<std::size_t>{0, 1}));
    EXPECT_EQ(queryRows(maps, QueryChoice::LastPrompt), (std::vector<std::size_t>{2}));

    // Out of range: nothing.
    s.layerSlot = 2;
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
    s.layerSlot = 0;
    s.head = 2;
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
}

namespace {

// 1 layer (decoder layer 3), 4 heads, a 2 × 2 grid; rows: last prompt, 3 answer tokens (hand_maps.h).
AttentionMaps fourHeadMaps() {
    return sdrpn::test::handMadeMaps(1);
}

}  // namespace

TEST(AttentionMaps, ASetOfHeadsIsTheMeanOfThoseHeads) {
    const AttentionMaps maps = fourHeadMaps();
    const TokenGrid grid = imageTokenGrid(maps, twoByTwo(28, 28, ImageFit::Pad));
    ASSERT_EQ(grid.cells(), 4u);
    MapSelection s;
    s.query = QueryChoice::LastPrompt;  // row 0

    // Heads 0 and 2, row 0: ({1,2,3,4} + {0,0,0,8}) / 2.
    s.heads = {0, 2};
    const std::vector<float> pair = attentionGrid(maps, s, grid);
    EXPECT_EQ(pair, (std::vector<float>{0.5f, 1.0f, 1.5f, 6.0f}));
    // Every head, row 0: ({1,2,3,4} + {9,9,9,9} + {0,0,0,8} + {5,5,5,5}) / 4.
    s.heads.clear();
    const std::vector<float> all = attentionGrid(maps, s, grid);
    EXPECT_EQ(all, (std::vector<float>{3.75f, 4.0f, 4.25f, 6.5f}));
    EXPECT_NE(pair, all);
    // Order and repeats do not matter: a set.
    s.heads = {2, 0, 2};
    EXPECT_EQ(attentionGrid(maps, s, grid), pair);
    // A set of one head is that head, as `head` alone.
    s.heads = {1};
    const std::vector<float> one = attentionGrid(maps, s, grid);
    EXPECT_EQ(one, (std::vector<float>{9, 9, 9, 9}));
    s.heads.clear();
    s.head = 1;
    EXPECT_EQ(attentionGrid(maps, s, grid), one);

    // Heads 0, 2 and 3 over the three answer rows: a mean over 3 heads × 3 rows.
    // Per key: (2+4+0 + 4+0+2 + 1+3+0) / 9 = 16/9, (0+4+6 + 2+2+0 + 1+3+0) / 9 = 18/9,
    //          (0+0+0 + 0+4+0 + 1+3+0) / 9 = 8/9,  (2+0+6 + 0+6+0 + 1+3+0) / 9 = 18/9.
    s.head = -1;
    s.heads = {0, 2, 3};
    s.query = QueryChoice::Answer;
    const std::vector<float> answer = attentionGrid(maps, s, grid);
    ASSERT_EQ(answer.size(), 4u);
    EXPECT_FLOAT_EQ(answer[0], 16.0f / 9);
    EXPECT_FLOAT_EQ(answer[1], 2.0f);
    EXPECT_FLOAT_EQ(answer[2], 8.0f / 9);
    EXPECT_FLOAT_EQ(answer[3], 2.0f);

    // A head out of range (or negative) in the set: no map.
    s.heads = {0, 4};
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
    s.heads = {-1, 2};
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
}

TEST(AttentionMaps, OneAnswerTokenIsOneAnswerRow) {
    const AttentionMaps maps = fourHeadMaps();
    const TokenGrid grid = imageTokenGrid(maps, twoByTwo(28, 28, ImageFit::Pad));
    // Answer rows are rows 1, 2, 3: token 1 is row 2.
    EXPECT_EQ(queryRows(maps, QueryChoice::AnswerToken, 0), (std::vector<std::size_t>{1}));
    EXPECT_EQ(queryRows(maps, QueryChoice::AnswerToken, 1), (std::vector<std::size_t>{2}));
    EXPECT_EQ(queryRows(maps, QueryChoice::AnswerToken, 2), (std::vector<std::size_t>{3}));
    EXPECT_TRUE(queryRows(maps, QueryChoice::AnswerToken, 3).empty());
    EXPECT_TRUE(queryRows(maps, QueryChoice::AnswerToken, -1).empty());

    MapSelection s;
    s.query = QueryChoice::AnswerToken;
    s.answerToken = 1;
    s.heads = {0, 2};
    // Row 2, heads 0 and 2: ({4,4,0,0} + {0,2,4,6}) / 2.
    const std::vector<float> token = attentionGrid(maps, s, grid);
    EXPECT_EQ(token, (std::vector<float>{2, 3, 2, 3}));
    s.query = QueryChoice::Answer;
    EXPECT_NE(attentionGrid(maps, s, grid), token);  // the mean over the three answer rows differs

    s.query = QueryChoice::AnswerToken;
    s.answerToken = 3;
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
    EXPECT_EQ(queryChoiceShortName(QueryChoice::AnswerToken, 2), QStringLiteral("answer token 2"));
    EXPECT_EQ(queryChoiceNames().size(), 4);
}

TEST(AttentionMaps, NoRowsOfAKindGiveNoMap) {
    AttentionMaps maps = syntheticMaps();
    // Keep only the last prompt row's kind: no answer rows (a one-token answer is never fed back).
    for (auto& row : maps.rows)
        if (row.kind == QueryKind::Answer) row.kind = QueryKind::Question;
    const TokenGrid grid = imageTokenGrid(maps, twoByTwo(28, 28, ImageFit::Pad));
    MapSelection s;
    s.query = QueryChoice::Answer;
    EXPECT_TRUE(queryRows(maps, QueryChoice::Answer).empty());
    EXPECT_TRUE(attentionGrid(maps, s, grid).empty());
    EXPECT_TRUE(queryRows(maps, QueryChoice::AnswerToken, 0).empty());
}

TEST(AttentionMaps, AGridOtherThanTheGeometrysIsNotDrawn) {
    AttentionMaps maps = syntheticMaps();
    maps.imageSpans[0].grid = {1, 4};
    EXPECT_EQ(imageTokenGrid(maps, twoByTwo(28, 28, ImageFit::Pad)).rows, 0);
}

TEST(AttentionMaps, PadBandCellsAreEmpty) {
    // 40 × 20 padded to a 40 × 40 square: rows of 20 px; the top and bottom halves of the square are pad.
    const auto geometry = twoByTwo(40, 20, ImageFit::Pad);
    const std::vector<QRectF> cells = cellRectsOnSource(geometry, 2, 2);
    ASSERT_EQ(cells.size(), 4u);
    // The content (y 10..30 of the square) straddles both rows: each row keeps a 10 px band of the image.
    EXPECT_EQ(cells[0], QRectF(0, 0, 20, 10));
    EXPECT_EQ(cells[3], QRectF(20, 10, 20, 10));
    // A 40 × 10 image: the content (y 15..25) still touches both rows, 5 px each.
    const std::vector<QRectF> thin = cellRectsOnSource(twoByTwo(40, 10, ImageFit::Pad), 2, 2);
    EXPECT_EQ(thin[0], QRectF(0, 0, 20, 5));
    // A 56 × 14 image in a 4 × 4 grid (28 / 7): rows 0 and 3 are wholly pad, rows 1 and 2 are the image.
    const auto wide = sdrpn::models::makeGridGeometry(56, 14, ImageFit::Pad, 28, 7);
    const std::vector<QRectF> cells4 = cellRectsOnSource(wide, 4, 4);
    const std::vector<bool> drawn = drawnCells(cells4);
    for (int c = 0; c < 4; ++c) {
        EXPECT_FALSE(drawn[std::size_t(c)]) << c;
        EXPECT_TRUE(drawn[std::size_t(4 + c)]) << c;
        EXPECT_TRUE(drawn[std::size_t(8 + c)]) << c;
        EXPECT_FALSE(drawn[std::size_t(12 + c)]) << c;
    }
    EXPECT_EQ(cells4[4], QRectF(0, 0, 14, 7));
}

TEST(AttentionMaps, CentreCropCellsCoverOnlyTheVisibleRegion) {
    // 56 × 28 → shortest edge 28 (no resize), crop x 14..42: cells of 14 px starting at x = 14.
    const auto geometry = twoByTwo(56, 28, ImageFit::Crop);
    const std::vector<QRectF> cells = cellRectsOnSource(geometry, 2, 2);
    EXPECT_EQ(cells[0], QRectF(14, 0, 14, 14));
    EXPECT_EQ(cells[1], QRectF(28, 0, 14, 14));
    EXPECT_EQ(cells[3], QRectF(28, 14, 14, 14));
    for (bool d : drawnCells(cells)) EXPECT_TRUE(d);
}
