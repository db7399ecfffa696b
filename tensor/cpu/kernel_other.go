//go:build !amd64 || purego

package cpu

func bestKernel() *kernel { return goKernel }

func kernels() []*kernel { return []*kernel{goKernel} }

var f16Decode = f16DecodeGo

var (
	scaleMax    = scaleMaxGo
	expShiftSum = expShiftSumGo
)

// softmaxImpl is one implementation of the attention softmax row kernels.
type softmaxImpl struct {
	name        string
	scaleMax    func(s []float32, scale float32) float32
	expShiftSum func(s []float32, m float32) float32
}

func softmaxImpls() []softmaxImpl { return []softmaxImpl{{"go", scaleMaxGo, expShiftSumGo}} }

func widenImpls() []widenImpl { return []widenImpl{widenGo} }
