"""improved-diffusion / Extended-Analytic-DPM UNet state dict -> Flax params (reference A.10.1,
A.10.2, A.3.2).

Keys: time_embed.{0,2}, [label_emb], input_blocks.<n>.<m>, middle_block.{0,1,2},
output_blocks.<n>.<m>, out.{0,2}, and for UNetModel4Pretrained out2.* (simple: out2.{0,2};
complex: ResBlock out2.0, then out2.{1,3}). The attention qkv / proj_out are Conv1d
[O, I, 1] -> Dense [I, O]; the per-head [head][q|k|v] channel order is kept as stored (the
Flax AttentionBlock splits it the same way). Walks `models.iddpm_unet.blocks`, the same block
lists the module builds, and checks the result against jax.eval_shape of its init.
"""
from models import iddpm_unet
from models.convert import layout


def _res(r, kwargs):
  p = {'in_layers_0': r.norm('in_layers.0'), 'in_layers_2': r.conv('in_layers.2'),
       'emb_layers_1': r.dense('emb_layers.1'), 'out_layers_0': r.norm('out_layers.0'),
       'out_layers_3': r.conv('out_layers.3')}
  if (kwargs['out_channels'] or kwargs['channels']) != kwargs['channels']:
    p['skip_connection'] = r.conv('skip_connection')
  return p


def convert(state_dict, kwargs):
  """Flat {torch key: array} of UNetModel / UNetModel4Pretrained(**kwargs) -> {'params': ...}."""
  module = iddpm_unet.create(kwargs)
  r = layout.Reader(state_dict)
  p = {'time_embed_0': r.dense('time_embed.0'), 'time_embed_2': r.dense('time_embed.2')}
  if module.num_classes:
    p['label_emb'] = {'embedding': r.get('label_emb.weight')}

  def layer(prefix, kind, kw):
    if kind == 'conv':
      return r.conv(prefix)
    if kind == 'res':
      return _res(r.sub(prefix + '.'), kw)
    if kind == 'attn':
      return {'norm': r.norm(f'{prefix}.norm'), 'qkv': r.dense(f'{prefix}.qkv'),
              'proj_out': r.dense(f'{prefix}.proj_out')}
    if not kw['use_conv']:
      return None  # average pooling / plain nearest upsampling: no parameters
    name = 'op' if kind == 'down' else 'conv'
    return {name: r.conv(f'{prefix}.{name}')}

  def sequential(torch_prefix, flax_prefix, layers):
    for j, (kind, kw) in enumerate(layers):
      got = layer(f'{torch_prefix}.{j}', kind, kw)
      if got is not None:
        p[f'{flax_prefix}_{j}'] = got

  plan = iddpm_unet.blocks(module)
  for i, layers in enumerate(plan['input_blocks']):
    sequential(f'input_blocks.{i}', f'input_blocks_{i}', layers)
  sequential('middle_block', 'middle_block', plan['middle_block'])
  for i, layers in enumerate(plan['output_blocks']):
    sequential(f'output_blocks.{i}', f'output_blocks_{i}', layers)
  p['out_0'], p['out_2'] = r.norm('out.0'), r.conv('out.2')
  if isinstance(module, iddpm_unet.UNetModel4Pretrained):
    if module.mode == 'simple':
      p['out2_0'], p['out2_2'] = r.norm('out2.0'), r.conv('out2.2')
    else:
      ch = plan['output_blocks'][-1][0][1]['out_channels']
      p['out2_0'] = _res(r.sub('out2.0.'), {'channels': ch, 'out_channels': None})
      p['out2_1'], p['out2_3'] = r.norm('out2.1'), r.conv('out2.3')
  return r.finish({'params': p}, expected=iddpm_unet.param_shapes(module))
