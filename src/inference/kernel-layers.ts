// The dense layers a net is compiled from (as a model file gives them) and the checks that keep the
// kernel's reads and writes inside the memory it lays them out in.

export type Activation = 'relu' | 'tanh' | 'sigmoid' | 'identity' | 'softmax'
/** The activations the kernel implements; model-file.ts refuses a file naming any other. */
export const ACTIVATIONS: readonly Activation[] = ['relu', 'tanh', 'sigmoid', 'identity', 'softmax']

/** One dense layer as in a model file: `weights` is [nIn][nOut]. */
export interface DenseLayer {
  readonly weights: readonly (readonly number[])[]
  readonly bias: readonly number[]
  readonly activation: Activation
}

/**
 * A layer list the kernel cannot lay out in memory. Files reach the kernel through parseModel, which
 * refuses every such shape with a message naming the field, so this only fires on a bug.
 */
export class ModelShapeError extends Error {
  override name = 'ModelShapeError'
}

// Only what keeps reads and writes inside the net's region and the scratch: values, activation
// names and class counts are the model file's rules (model-file.ts), which callers have checked.
export function checkLayers(layers: readonly DenseLayer[]): { nIn: number; nOut: number }[] {
  if (layers.length === 0) throw new ModelShapeError('a network needs at least one layer')
  let prevOut = -1
  return layers.map((layer, k) => {
    const at = `layers[${k}]`
    const nIn = layer.weights.length
    const nOut = layer.bias.length
    if (nIn === 0) throw new ModelShapeError(`${at}.weights is empty`)
    if (nOut === 0) throw new ModelShapeError(`${at}.bias is empty`)
    if (prevOut >= 0 && nIn !== prevOut) {
      throw new ModelShapeError(`${at}.weights has ${nIn} rows but layers[${k - 1}] has ${prevOut} outputs`)
    }
    layer.weights.forEach((row, i) => {
      if (row.length !== nOut) throw new ModelShapeError(`${at}.weights[${i}] has ${row.length} values, expected ${nOut} (the bias length)`)
    })
    prevOut = nOut
    return { nIn, nOut }
  })
}
