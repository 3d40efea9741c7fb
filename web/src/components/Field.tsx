import type { InputHTMLAttributes, ReactNode } from "react";

type FieldProps = Omit<InputHTMLAttributes<HTMLInputElement>, "id" | "value" | "onChange"> & {
  id: string;
  label: ReactNode;
  value: string;
  onValue: (value: string) => void;
};

// An input with its label: the form row of every page. The input's other attributes (type,
// inputMode, min, step, required, autoComplete...) pass through.
export function Field({ id, label, value, onValue, ...input }: FieldProps) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        {...input}
        id={id}
        value={value}
        onChange={(e) => {
          onValue(e.target.value);
        }}
      />
    </>
  );
}
