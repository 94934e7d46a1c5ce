package main

import "math"

// priceFactor: PF = (ε − p_prov/p_cons)/ε. Negative when the provider asks more than ε
// times the consumer's price: such a provider loses to any with PF > 0.
func priceFactor(req Requirement, price float64) float64 {
	assert(req.Price > 0 && req.Epsilon > 0, "consumer price and ε are positive")
	return (req.Epsilon - price/req.Price) / req.Epsilon
}

// speedFactor: SF = Π over up and down of x^μ/(1+x^μ), x = provider speed / requirement.
func speedFactor(req Requirement, upMbps, downMbps float64) float64 {
	assert(req.UpMbps > 0 && req.DownMbps > 0, "required speeds are positive")
	return sigmoidish(upMbps/req.UpMbps, req.Mu) * sigmoidish(downMbps/req.DownMbps, req.Mu)
}

func sigmoidish(x, mu float64) float64 {
	if x <= 0 {
		return 0
	}
	p := math.Pow(x, mu)
	return p / (1 + p)
}

// score: FF = PF · SF · uptime · load · strength · feedback (load = 1 − utilisation).
func score(v View) float64 {
	return v.PF * v.SF * v.Uptime * v.Load * v.Strength * v.Feedback
}

// zFilteredMean: the mean of the values whose |z| (population std) is at most zMax; all
// of them when they are all equal. NaN for none.
func zFilteredMean(values []float64, zMax float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	mean := 0.0
	for _, x := range values {
		mean += x
	}
	mean /= float64(len(values))
	variance := 0.0
	for _, x := range values {
		variance += (x - mean) * (x - mean)
	}
	std := math.Sqrt(variance / float64(len(values)))
	if std == 0 {
		return mean
	}
	sum, kept := 0.0, 0
	for _, x := range values {
		if math.Abs(x-mean)/std <= zMax {
			sum += x
			kept++
		}
	}
	assert(kept > 0, "some value lies within one std of the mean")
	return sum / float64(kept)
}
