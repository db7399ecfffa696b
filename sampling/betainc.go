package sampling

import (
	"fmt"
	"math"
)

// betaInc is the regularized incomplete beta function I_x(a, b), evaluated with the continued
// fraction (modified Lentz) on the side where it converges fast.
func betaInc(x, a, b float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(x, a, b) / a
	}
	return 1 - front*betaCF(1-x, b, a)/b
}

func betaCF(x, a, b float64) float64 {
	const tiny = 1e-300
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := 1 - qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= 10000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-16 {
			break
		}
	}
	return h
}

// betaPPF is the quantile function of Beta(a, b) (scipy.stats.beta.ppf), found by bisection
// on betaInc to the last bit of a float64. The symmetric median is returned exactly, since the
// beta scheduler rounds ppf·999 and 0.5·999 sits on a rounding tie.
func betaPPF(p, a, b float64) (float64, error) {
	if !(a > 0) || !(b > 0) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return 0, fmt.Errorf("%w: beta distribution parameters %v, %v", ErrParam, a, b)
	}
	switch {
	case p != p:
		return 0, fmt.Errorf("%w: beta quantile of NaN", ErrParam)
	case p <= 0:
		return 0, nil
	case p >= 1:
		return 1, nil
	case a == b && p == 0.5:
		return 0.5, nil
	}
	lo, hi := 0.0, 1.0
	for i := 0; i < 200; i++ {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if betaInc(mid, a, b) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + (hi-lo)/2, nil
}
