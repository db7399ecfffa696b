package executor

import (
	"encoding/json"
	"math/big"
)

func ojsonNumber(i *big.Int) json.Number { return json.Number(i.String()) }
