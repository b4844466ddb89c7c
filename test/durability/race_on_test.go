//go:build race

package durability

// raceEnabled: the race detector's shadow memory inflates RSS several times
// over, so RSS bounds are only logged under -race (the heap bound still holds).
const raceEnabled = true
