package cpu

import "math"

// Fast float32 exponential for the attention softmax: exp(x) = 2^n·exp(r) with
// n = round(x·log2(e)), r = x - n·ln2 (ln2 split in two parts), and a degree-6 polynomial for
// exp(r) on |r| ≤ ln2/2. Relative error below 2 ulp; inputs below -87.33 give 0 (no
// subnormals), above 88.72 give +Inf. The amd64 assembly implements the same steps.

const (
	expLog2e = 1.44269504088896341
	expLn2Hi = 0.693359375
	expLn2Lo = -2.12194440e-4
	expMin   = -87.33654
	expMax   = 88.72283
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
)

func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < expMin:
		return 0
	case x > expMax:
		return float32(math.Inf(1))
	}
	n := float32(math.Floor(float64(x*expLog2e + 0.5)))
	r := x - n*expLn2Hi
	r -= n * expLn2Lo
	p := float32(expP0)
	p = p*r + expP1
	p = p*r + expP2
	p = p*r + expP3
	p = p*r + expP4
	p = p*r + expP5
	p = p*r*r + r + 1
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(n))<<23)
}

// expShiftSumGo sets s[j] = exp(s[j] - m) and returns the sum.
func expShiftSumGo(s []float32, m float32) float32 {
	var sum float32
	for j, v := range s {
		e := expf(v - m)
		s[j] = e
		sum += e
	}
	return sum
}

// scaleMaxGo sets s[j] *= scale and returns the maximum (-Inf for an empty s; NaN propagates).
func scaleMaxGo(s []float32, scale float32) float32 {
	m := float32(math.Inf(-1))
	for j, v := range s {
		v *= scale
		s[j] = v
		m = max(m, v)
	}
	return m
}
