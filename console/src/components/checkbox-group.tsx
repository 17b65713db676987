/** A fieldset of checkboxes choosing several values. */
export function CheckboxGroup<T extends string>(props: {
  legend: string;
  name: string;
  options: readonly { value: T; label: string }[];
  selected: readonly T[];
  onChange: (selected: T[]) => void;
  hint?: string;
}) {
  const toggle = (value: T, on: boolean) =>
    props.onChange(on ? [...props.selected, value] : props.selected.filter((v) => v !== value));
  return (
    <fieldset class="checkbox-group">
      <legend>{props.legend}</legend>
      {props.hint && <p class="hint">{props.hint}</p>}
      {props.options.map((option) => (
        <label key={option.value} class="check">
          <input
            type="checkbox"
            name={props.name}
            value={option.value}
            checked={props.selected.includes(option.value)}
            onChange={(e) => toggle(option.value, e.currentTarget.checked)}
          />
          {option.label}
        </label>
      ))}
    </fieldset>
  );
}
